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
        path = folder / "config.yaml"
        if path.is_file():
            try:
                training = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (yaml.YAMLError, UnicodeDecodeError, RecursionError):
                training = None
            if not isinstance(training, dict):
                raise UserError(f"{path}: not a training recipe (a YAML mapping); restore it "
                                "from the run's backup or delete it (the adapter does not "
                                "need it)")
        return cls(folder, read_config(folder), training, read_evaluations(folder))

    def identity(self) -> dict:
        """The facts a reader needs to trust the run: models, stage, training length."""
        enc = self.config.encoder
        template = self.config.template.name
        steps = None
        done = self.folder / "demo_done.json"
        if done.is_file():
            try:
                steps = json.loads(done.read_text(encoding="utf-8")).get("steps")
            except (ValueError, UnicodeDecodeError, AttributeError, RecursionError):
                steps = None  # the demo's own marker: without it, the length is just not shown
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
    fix = "delete it (scores are re-recorded by the next `musilingo score --run`)"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"{path}: not valid JSON ({str(exc)[:120]}); {fix}") from None
    if not isinstance(data, list):
        raise UserError(f"{path}: not a list of evaluations; {fix}")
    for i, entry in enumerate(data):
        problem = _evaluation_problem(entry)
        if problem:
            raise UserError(f"{path}: evaluation {i + 1} {problem}; {fix}")
    return data


def _evaluation_problem(entry) -> str | None:
    """What makes one recorded evaluation unreadable (None: nothing). Every reader of the
    records (the card, export, compare) then relies on these shapes."""
    if not isinstance(entry, dict):
        return "is not an object"
    protocols = entry.get("protocols") or {}
    if not isinstance(protocols, dict) or not all(isinstance(v, dict) or v is None
                                                  for v in protocols.values()):
        return "has 'protocols' that are not {protocol: {metric: value}}"
    control = entry.get("control") or []
    if not isinstance(control, list) or not all(
            isinstance(r, dict) and "protocol" in r and "metric" in r for r in control):
        return "has 'control' rows without protocol and metric"
    return None


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
