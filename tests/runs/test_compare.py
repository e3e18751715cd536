"""`musilingo compare`: several run folders in one table (variants, final loss, every recorded
score with its protocol and shuffled-audio control) and one PNG of their loss curves."""
from __future__ import annotations

import json
import re

from musilingo.runs.card import record_evaluation
from tests.helpers.cli import run_cli
from tests.helpers.runs import save_run


def _run(folder, losses, evaluation=None, adapter="linear"):
    save_run(folder, encoder_dim=16, num_layers=2, encoder_meta={"encoder": "tiny"})
    cfg = json.loads((folder / "adapter_config.json").read_text())
    cfg["kind"] = adapter
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    (folder / "config.yaml").write_text(f"max_steps: {len(losses)}\nlora_rank: 0\n")
    (folder / "metrics.jsonl").write_text("".join(
        json.dumps({"step": i + 1, "loss": v}) + "\n" for i, v in enumerate(losses)) + '{"step"')
    if evaluation:
        record_evaluation(folder, evaluation)
    return folder


def test_compare_puts_runs_side_by_side(tmp_path, capsys):
    a = _run(tmp_path / "linear", [3.0, 2.0, 1.5], {
        "dataset": "muchomusic", "kind": "generated test split", "source": "x",
        "protocols": {"muchomusic": {"accuracy": 0.5, "answered_rate": 1.0}},
        "control": [{"protocol": "muchomusic", "metric": "accuracy", "real": 0.5,
                     "shuffled": 0.25, "delta": 0.25}]})
    b = _run(tmp_path / "mlp", [3.0, 1.0], adapter="mlp")
    code, out, err = run_cli(capsys, "compare", str(a), str(b), "--out", str(tmp_path / "cmp"))
    assert code == 0, err
    assert "| | linear | mlp |" in out
    assert "| adapter | linear | mlp |" in out and "| steps | 3 | 2 |" in out
    assert "| final_loss | 1.5000 | 1.0000 |" in out          # the cut last line is ignored
    assert "| muchomusic muchomusic accuracy | 0.5000 (shuffled 0.2500) | - |" in out
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [r["adapter"] for r in saved] == ["linear", "mlp"]
    assert (tmp_path / "cmp" / "losses.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run_cli(capsys, "compare", str(tmp_path / "nothing"))
    assert code == 2 and "nothing" in err


def test_compare_escapes_what_run_files_say_and_names_protocols(tmp_path, capsys):
    """Run names and recorded values are data: a `|`, a heading or HTML cannot change the
    table, a `$` cannot break the plot, and two multiple-choice protocols never share a row."""
    a = _run(tmp_path / "a|b <img src=x> # $\\frac{$", [2.0, 1.0], {
        "dataset": "muchomusic", "kind": "generated test split", "source": "x",
        "protocol_name": "MuChoMusic, 1-shot, 4 options",
        "protocols": {"muchomusic": {"accuracy": 0.5}}})
    record_evaluation(a, {"dataset": "muchomusic", "kind": "generated test split",
                          "source": "y", "protocol_name": "MuChoMusic, 0-shot, 4 options",
                          "protocols": {"muchomusic": {"accuracy": 0.25}}})
    code, out, err = run_cli(capsys, "compare", str(a), "--out", str(tmp_path / "cmp"))
    assert code == 0, err
    assert re.search(r"(?<!\\)[<>#]", out) is None          # every <, > and # escaped
    assert "a\\|b \\<img src=x\\> \\# $" in out
    assert all(line.count("|") - line.count("\\|") == 3 for line in out.splitlines()
               if line.startswith("|"))
    assert "muchomusic muchomusic (MuChoMusic, 1-shot, 4 options) accuracy | 0.5000" in out
    assert "muchomusic muchomusic (MuChoMusic, 0-shot, 4 options) accuracy | 0.2500" in out
    assert (tmp_path / "cmp" / "losses.png").read_bytes()[:4] == b"\x89PNG"
