"""What a run folder says about itself: its identity and the evaluations recorded in it.

    card = RunCard.read("runs/instruct")
    card.identity()          # {"llm": ..., "encoder": ..., "stage": ..., "steps": ..., ...}
    card.evaluations         # what `musilingo score --run` and the demo recorded
    record_evaluation("runs/instruct", {"dataset": "musiccaps", "protocols": {...}})

`musilingo score --run RUN` and `musilingo demo` append one entry per evaluation to
`RUN/evaluations.json` (the metric values per protocol, and the shuffled-audio control when it
ran), so that the web app (`musilingo serve`) and the hub export (`musilingo export`) can show a
run's scores next to the run without anyone copying numbers by hand. Each entry names its
protocol and source; nothing else in the run folder changes.
"""
from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..files import atomic_write
from ..models.adapter_config import AdapterConfig
from .adapter_file import read_config, run_folder
from ..markdown import md_code, md_text

EVALUATIONS = "evaluations.json"
STAGES = {"caption": "stage 1 (pretrain: captions)", "instruct": "stage 2 (instruct: Q&A)"}


@dataclass
class RunCard:
    folder: Path
    config: AdapterConfig                 # adapter_config.json
    training: dict = field(default_factory=dict)   # config.yaml of a trained run
    evaluations: list = field(default_factory=list)

    @classmethod
    def read(cls, run: str | Path) -> "RunCard":
        import yaml

        folder = run_folder(run)
        training = {}
        if (folder / "config.yaml").is_file():
            try:
                training = yaml.safe_load((folder / "config.yaml").read_text()) or {}
            except yaml.YAMLError:
                training = {}
        return cls(folder, read_config(folder), training, read_evaluations(folder))

    def identity(self) -> dict:
        """The facts a reader needs to trust the run: models, stage, training length."""
        enc = self.config.encoder
        template = self.config.template.name
        steps = None
        done = self.folder / "demo_done.json"
        if done.is_file():
            steps = json.loads(done.read_text()).get("steps")
        return {
            "llm": self.config.llm, "encoder": enc.get("encoder", "?"),
            "encoder_weights": enc.get("weights_sha256"),
            "stage": STAGES.get(template, template),
            "template": template,
            "t": self.config.t, "layers": self.config.num_layers,
            "imported_from": self.config.imported_from,
            "datasets": list(dict.fromkeys(d.get("name") for d in
                                           self.training.get("datasets") or [])),
            "max_steps": self.training.get("max_steps") or steps,
            "lr": self.training.get("lr"),
            "init_adapter": self.training.get("init_adapter"),
        }

    def markdown(self) -> str:
        """The identity and the recorded scores, as Markdown (the app's header, the card)."""
        ident = self.identity()
        lines = [f"**Run** {md_code(self.folder)}: LLM {md_code(ident['llm'])}, encoder "
                 f"{md_code(ident['encoder'])}, {md_text(ident['stage'])}"]
        if ident["imported_from"]:
            lines[0] += f", imported from {md_code(ident['imported_from'])}"
        elif ident["max_steps"]:
            lines[0] += (f", {md_text(ident['max_steps'])} steps on "
                         f"{', '.join(map(md_text, ident['datasets'])) or '?'}")
        lines += [""] + evaluations_markdown(self.evaluations)
        return "\n".join(lines).rstrip() + "\n"


def read_evaluations(folder: Path) -> list:
    path = Path(folder) / EVALUATIONS
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); delete it (scores are re-recorded by "
                        "the next `musilingo score --run`)") from None
    return data if isinstance(data, list) else []


def record_evaluation(folder: str | Path, entry: dict) -> None:
    """Append (or replace, same dataset + kind + source) one evaluation of the run."""
    folder = Path(folder)
    entries = [e for e in read_evaluations(folder)
               if (e.get("dataset"), e.get("kind"), e.get("source")) !=
               (entry.get("dataset"), entry.get("kind"), entry.get("source"))]
    entries.append(dict(entry, recorded=datetime.datetime.now(datetime.timezone.utc)
                        .isoformat(timespec="seconds")))
    atomic_write(folder / EVALUATIONS, json.dumps(entries, indent=2) + "\n")


def shuffled_control(entry: dict) -> dict[tuple[str, str], dict]:
    """{(protocol, metric): control row} of an evaluation's shuffled-audio control (the rows of
    the silence and noise controls carry `control`; the shuffled-audio ones predate it)."""
    return {(r["protocol"], r["metric"]): r for r in entry.get("control") or []
            if r.get("control", "shuffled-audio") == "shuffled-audio"}


def evaluations_markdown(entries: list) -> list[str]:
    """One table per evaluation: metric, value and (with the control) shuffled audio, delta."""
    if not entries:
        return ["_No evaluations recorded in this run folder (`musilingo score --run` records "
                "them)._"]
    out = []
    for e in entries:
        out += [f"**{md_text(e.get('dataset'))}** ({md_text(e.get('kind', 'scores'))}; "
                f"{md_text(e.get('source', ''))})", ""]
        control = shuffled_control(e)
        for protocol, values in (e.get("protocols") or {}).items():
            head = "| metric | value |" + (" shuffled audio | delta |" if control else "")
            named = f": {md_text(e['protocol_name'])}" if e.get("protocol_name") else ""
            out += [f"protocol {md_code(protocol)}{named}", "", head,
                    "|---|---:|" + ("---:|---:|" if control else "")]
            for name, value in values.items():
                row = f"| {md_text(name)} | {_fmt(value)} |"
                if control:
                    c = control.get((protocol, name), {})
                    row += f" {_fmt(c.get('shuffled'))} | {_fmt(c.get('delta'), sign=True)} |"
                out.append(row)
            out.append("")
    return out


def _fmt(value, sign: bool = False) -> str:
    if value is None:
        return "missing"
    if not isinstance(value, (int, float)):  # a hand-edited evaluations.json
        return md_text(value)
    return f"{value:+.4f}" if sign else f"{value:.4f}"
