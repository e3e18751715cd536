"""`musilingo compare RUN...`: several run folders side by side.

    musilingo compare runs/linear runs/mlp runs/lora --out compare/

One table (stdout, and compare.md / compare.json with --out) with each run's variant (LLM,
adapter kind, layer aggregation, prompt layout, LoRA rank, training steps), its final training
loss, and every evaluation recorded in it (`musilingo score --run`, the demo) with its protocol
and, where the shuffled-audio control ran, the shuffled value beside it; and, with --out, one
PNG of the training-loss curves (metrics.jsonl). Reads only what the runs recorded.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..files import atomic_path, atomic_write
from .card import RunCard, shuffled_control
from ..markdown import md_text, plot_text


def variant(card: RunCard) -> dict:
    """What kind of run it is: the settings that tell recipes trained from one cache apart."""
    config = card.config
    return {"llm": config.llm, "adapter": config.kind, "layers": config.layer_aggregation,
            "prompt": config.template.name, "lora": config.lora.r if config.lora else None,
            "steps": card.training.get("max_steps")}


def loss_curve(folder: Path) -> list[tuple[int, float]]:
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            out.append((int(row["step"]), float(row["loss"])))
        except (ValueError, KeyError, TypeError, RecursionError):
            continue  # a line cut by a kill (or damaged): the curve has a gap
    return out


def scores(card: RunCard) -> dict[str, tuple[float | None, float | None]]:
    """{"<dataset> <protocol> <metric>": (value, shuffled-audio value or None)}; a multiple-choice
    evaluation is named by its full protocol (MuChoMusic 1-shot and 0-shot, RUL-MuChoMusic),
    so that two protocols never share a row."""
    out = {}
    for e in card.evaluations:
        control = shuffled_control(e)
        for protocol, values in (e.get("protocols") or {}).items():
            named = f"{protocol} ({e['protocol_name']})" if e.get("protocol_name") else protocol
            for metric, value in (values or {}).items():
                out[f"{e.get('dataset')} {named} {metric}"] = (
                    value, control.get((protocol, metric), {}).get("shuffled"))
    return out


def _fmt(v) -> str:
    """A cell: numbers formatted, anything else (names from run files) as plain text."""
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else md_text(v)


def compare_runs(runs: list[str], out: str | Path | None = None) -> dict:
    """The comparison of `runs` (run folders); with `out`, compare.md, compare.json and
    losses.png written there. Returns {"runs": [...], "markdown": ...}."""
    if not runs:
        raise UserError("give at least one RUN folder to compare")
    cards = [RunCard.read(r) for r in runs]
    rows = []
    for card in cards:
        curve = loss_curve(card.folder)
        rows.append({"run": str(card.folder), **variant(card),
                     "final_loss": curve[-1][1] if curve else None, "scores": scores(card),
                     "curve": curve})
    keys = ["llm", "adapter", "layers", "prompt", "lora", "steps", "final_loss"]
    names = [Path(r["run"]).name for r in rows]
    lines = ["| | " + " | ".join(md_text(n) for n in names) + " |",
             "|---|" + "---:|" * len(rows)]
    lines += [f"| {k} | " + " | ".join(_fmt(r[k]) for r in rows) + " |" for k in keys]
    metrics = sorted({m for r in rows for m in r["scores"]})
    for m in metrics:
        cells = []
        for r in rows:
            value, shuffled = r["scores"].get(m, (None, None))
            cells.append(_fmt(value) + (f" (shuffled {_fmt(shuffled)})" if shuffled is not None
                                        else ""))
        lines.append(f"| {md_text(m)} | " + " | ".join(cells) + " |")
    if not metrics:
        lines += ["", "No evaluation is recorded in these runs: `musilingo score --run RUN "
                  "--control shuffled-audio ...` records one."]
    markdown = "\n".join(lines) + "\n"
    result = {"runs": rows, "markdown": markdown}
    if out is not None:
        folder = Path(out)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _plot(rows, names, folder / "losses.png")  # first: a plot error leaves no half
            atomic_write(folder / "compare.json", json.dumps(rows, indent=1))
            atomic_write(folder / "compare.md", markdown)
        except OSError as exc:
            raise UserError(f"--out {folder}: cannot write there ({exc.strerror})") from None
    return result


def _plot(rows: list[dict], names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in zip(names, rows):
        if r["curve"]:
            steps, losses = zip(*r["curve"])
            ax.plot(steps, losses, label=plot_text(name), linewidth=1)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title("training loss per run")
    if any(r["curve"] for r in rows):
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
