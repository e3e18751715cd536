"""The result of scoring under one protocol, and how it is shown (markdown, JSON).

Why a report object rather than a dict of numbers: the same text scores very differently under
the two protocols, so every figure travels with the protocol's name, its exact definition, the
BERTScore model used and the item count. A metric that could not run (no WordNet, no BERTScore
model offline, not requested) stays in the report as missing, with its reason; it is never
dropped or replaced by another number.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class MetricResult:
    """One metric's value under a protocol, or the reason it is missing."""

    name: str
    family: str
    definition: str
    headline: bool
    value: float | None = None
    missing: str | None = None

    def shown(self, percent: bool = False) -> str:
        if self.value is None:
            return "missing"
        return f"{self.value * 100:.2f}" if percent else f"{self.value:.4f}"


@dataclass
class ScoreReport:
    """Scores of `n_items` (prediction, reference) pairs under one named protocol."""

    protocol: str
    protocol_description: str
    n_items: int
    bertscore_model: str | None
    results: list[MetricResult]
    seconds: dict[str, float] = field(default_factory=dict)

    def result(self, name: str) -> MetricResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"protocol {self.protocol!r} has no metric {name!r}; it has "
                       f"{', '.join(r.name for r in self.results)}")

    def value(self, name: str) -> float | None:
        """The metric's value, None when it is missing (see `result(name).missing`)."""
        return self.result(name).value

    @property
    def headline(self) -> list[MetricResult]:
        """The figures this protocol's papers report, in their table order."""
        return [r for r in self.results if r.headline]

    @property
    def missing(self) -> dict[str, str]:
        return {r.name: r.missing for r in self.results if r.missing is not None}

    def to_dict(self) -> dict:
        return {
            "protocol": self.protocol,
            "protocol_description": self.protocol_description,
            "n_items": self.n_items,
            "bertscore_model": self.bertscore_model,
            "headline": [r.name for r in self.headline],
            "values": {r.name: r.value for r in self.results},
            "missing": self.missing,
            "metrics": [asdict(r) for r in self.results],
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }

    def label(self, result) -> str:
        """A column name that says which model a BERTScore came from: a MiniLM BERTScore is not
        comparable with the roberta-large ones papers publish."""
        if result.name.lower().startswith("bertscore") and self.bertscore_model:
            model = str(self.bertscore_model).split(" (")[0]   # "minilm (layer 6, ...)": minilm
            return f"{result.name} ({Path(model).name or model})"
        return result.name

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self, percent: bool = False, details: bool = True) -> str:
        """A paper-style table of the headline figures, then (with `details`) every metric."""
        scale = " (x100)" if percent else ""
        lines = [f"### Protocol `{self.protocol}`: {self.n_items:,} items{scale}", "",
                 self.protocol_description, ""]
        heads = self.headline
        lines.append("| " + " | ".join(self.label(r) for r in heads) + " |")
        lines.append("|" + "---:|" * len(heads))
        lines.append("| " + " | ".join(r.shown(percent) for r in heads) + " |")
        lines.append("")
        if details:
            lines += ["| metric | value | headline | definition |", "|---|---:|:-:|---|"]
            for r in self.results:
                mark = "yes" if r.headline else ""
                lines.append(f"| {self.label(r)} | {r.shown(percent)} | {mark} | {r.definition} |")
            lines.append("")
        by_reason: dict[str, list[str]] = {}
        for name, reason in self.missing.items():
            by_reason.setdefault(reason, []).append(name)
        for reason, names in by_reason.items():
            lines.append(f"- missing {', '.join(names)}: {reason}")
        if self.bertscore_model:
            lines.append(f"- BERTScore model: {self.bertscore_model}")
        if self.seconds:
            spent = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
            lines.append(f"- seconds: {spent}")
        return "\n".join(lines).rstrip() + "\n"


def reports_to_markdown(reports: list[ScoreReport], percent: bool = False,
                        source: str | None = None) -> str:
    """Several protocols' reports as one markdown document."""
    head = [f"# Scores of `{source}`", ""] if source else []
    return "\n".join(head + [r.to_markdown(percent) for r in reports])


def write_scores(out_dir, result: dict) -> None:
    """`<out_dir>/scores.json` (the result less its markdown) and `scores.md`, each written
    whole (a kill leaves the old file or the new one)."""
    from ..errors import UserError
    from ..files import atomic_write

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "scores.json", json.dumps(
            {k: v for k, v in result.items() if k != "markdown"}, indent=2) + "\n")
        atomic_write(out / "scores.md", result["markdown"])
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write there ({exc.strerror})") from exc
