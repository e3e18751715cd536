"""The demo's report folder: what a newcomer reads after `musilingo demo`.

    report/metrics.json     every number (accuracy per attribute and condition, text metrics,
                            chance levels, timings, the configuration)
    report/summary.md       the headline tables in markdown
    report/loss.png         training loss per step, both stages
    report/accuracy.png     attribute accuracy per attribute, answers and captions: untrained,
                            trained, shuffled, text only, chance
    report/samples.md       sample questions with the answers of each condition
"""
from __future__ import annotations

import json
from pathlib import Path

from ..runs.compare import loss_curve
from .evaluation import CONDITIONS, TITLES

HEADLINE = ("B-U", "METEOR", "ROUGE-L", "BERTScore-R")


def _plot_loss(runs: Path, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    offset = 0
    for stage in ("pretrain", "instruct"):
        curve = loss_curve(runs / stage)   # metrics.jsonl, as `musilingo compare` reads it
        if curve:
            steps, losses = zip(*curve)
            ax.plot([s + offset for s in steps], losses, label=f"stage {1 if stage == 'pretrain' else 2}: {stage}")
            offset += max(steps)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (target tokens)")
    ax.set_title("musilingo demo: adapter training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_accuracy(metrics: dict, path: Path) -> None:
    """Per attribute, for answers (left) and captions (right): each condition against chance."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    attributes = list(metrics["chance"])
    x = np.arange(len(attributes))
    fig, axes = plt.subplots(1, 2, figsize=(14, 4), sharey=True)
    shown = [k for k in CONDITIONS if k in metrics["conditions"]]
    width = 0.8 / (len(shown) + 1)
    for ax, kind, title in zip(axes, ("accuracy", "caption_accuracy"),
                               ("answers: the answer names the right value",
                                "captions: the caption names the clip's value")):
        for k, condition in enumerate(shown + ["chance"]):
            per = ({a: metrics["chance"][a] for a in attributes} if condition == "chance" else
                   metrics["conditions"][condition].get(kind, {}).get("per_attribute", {}))
            ax.bar(x + (k - len(shown) / 2) * width, [per.get(a, 0.0) for a in attributes],
                   width, label=TITLES.get(condition, condition),
                   **({"color": "lightgrey"} if condition == "chance" else {}))
        ax.set_xticks(x)
        ax.set_xticklabels(attributes)
        ax.set_ylim(0, 1.15)  # room for the legend above the bars
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("attribute accuracy on the test clips")
    axes[0].legend(ncol=len(shown) + 1, fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v) -> str:
    return "missing" if v is None else f"{v:.3f}"


def _header(first: str, extra: tuple[str, ...] = ()) -> list[str]:
    """A table header: the row label, `extra` columns, then one column per condition."""
    columns = [first, *extra, *(TITLES[k] for k in CONDITIONS)]
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def _accuracy_rows(metrics: dict, kind: str) -> list[str]:
    c = metrics["conditions"]
    rows = []
    for a, ch in metrics["chance"].items():
        row = [c[k].get(kind, {}).get("per_attribute", {}).get(a) if k in c else None
               for k in CONDITIONS]
        rows.append(f"| {a} | {ch:.3f} | " + " | ".join(_fmt(v) for v in row) + " |")
    rows.append(f"| **mean** | {metrics['mean_chance']:.3f} | " + " | ".join(
        _fmt(c[k].get(kind, {}).get("mean") if k in c else None) for k in CONDITIONS) + " |")
    return rows


def _mcq_rows(metrics: dict) -> list[str]:
    """Four-option questions: accuracy per kind and overall, and the answered rate."""
    c = metrics["conditions"]
    if "mcq" not in c["trained"]:
        return []
    lines = [f"## Four-option questions ({metrics['n_mcq']}; MuChoMusic's 0-shot prompt, the "
             "layout the demo trains on, and its reading rule; chance 0.250)", "",
             *_header("kind")]
    for kind in c["trained"]["mcq"]["per_kind"]:
        lines.append(f"| {kind} | " + " | ".join(
            _fmt(c[k]["mcq"]["per_kind"].get(kind)) if k in c else "-" for k in CONDITIONS) + " |")
    for key, title in (("accuracy", "**accuracy**"), ("answered_rate", "answered rate (IFR)")):
        lines.append(f"| {title} | " + " | ".join(
            _fmt(c[k]["mcq"][key]) if k in c else "-" for k in CONDITIONS) + " |")
    return lines + [""]


def summary_markdown(metrics: dict) -> str:
    c = metrics["conditions"]
    lines = ["# musilingo demo", "",
             f"{metrics['n_questions']} test questions and {metrics['n_captions']} test captions; "
             f"LLM `{metrics['config']['llm']}`, encoder `{metrics['config']['encoder']}`.", "",
             "## Attribute accuracy (the answer names the right value)", "",
             *_header("attribute", ("chance",))]
    lines += _accuracy_rows(metrics, "accuracy")
    lines += ["", f"Listening margin (trained - shuffled audio, mean accuracy): "
              f"**{metrics['listening_margin']:+.3f}**", "",
              "## Caption attribute accuracy (the caption names the clip's value, and no other)",
              "", *_header("attribute", ("chance",))]
    lines += _accuracy_rows(metrics, "caption_accuracy")
    lines.append("")
    lines += _mcq_rows(metrics)
    for kind, title in (("qa_metrics", "Q&A answers"), ("caption_metrics", "Captions")):
        bert = c["trained"][kind].get("_bertscore_model")
        lines += [f"## {title}: text metrics (musilingo protocol; BERTScore model `{bert}`)", "",
                  "| condition | " + " | ".join(HEADLINE) + " |",
                  "|---|" + "---|" * len(HEADLINE)]
        for k in (k for k in CONDITIONS if k in c):
            lines.append(f"| {TITLES[k]} | " + " | ".join(_fmt(c[k][kind].get(m))
                                                           for m in HEADLINE) + " |")
        missing = c["trained"][kind].get("_missing") or {}
        for name, why in missing.items():
            lines.append(f"\n{name} missing: {why}")
        lines.append("")
    secs = metrics.get("seconds", {})
    lines += ["## Time (seconds)", "", " | ".join(f"{k} {v:.0f}" for k, v in secs.items()), ""]
    return "\n".join(lines)


def samples_markdown(metrics: dict) -> str:
    lines = ["# Sample questions and answers", ""]
    for s in metrics["samples"]:
        lines += [f"**{s['clip']}**: {s['question']}", f"- reference: {s['reference']}"]
        lines += [f"- {TITLES[k]}: {s[k]}" for k in CONDITIONS if k in s]
        lines.append("")
    return "\n".join(lines)


def write_report(folder: Path, metrics: dict, runs: Path, log=print) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    summary = summary_markdown(metrics)
    (folder / "summary.md").write_text(summary)
    (folder / "samples.md").write_text(samples_markdown(metrics))
    _plot_loss(runs, folder / "loss.png")
    _plot_accuracy(metrics, folder / "accuracy.png")
    log(summary)
    log(f"demo: report written to {folder}")
    return folder
