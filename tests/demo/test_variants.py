"""`musilingo demo --variants`: several recipes trained from one extraction, side by side."""
from __future__ import annotations

import json

import pytest

from musilingo.errors import UserError
from tests.helpers.cli import run_cli


@pytest.mark.slow
def test_variants_train_from_one_cache_and_report_side_by_side(tmp_path, capsys):
    out = tmp_path / "dv"
    code, stdout, err = run_cli(capsys, "demo", "--variants", "linear,mlp,resampler,lora", "--out", str(out),
                                "--no-progress", "n_train=16", "n_test=4", "instruct_steps=5",
                                "encoder=tiny", "llm=tiny-llama", "seconds=3")
    assert code == 0, err
    report = json.loads((out / "report" / "variants.json").read_text())
    rows = report["variants"]
    assert list(rows) == ["linear", "mlp", "resampler", "lora"]
    for row in rows.values():
        assert set(row["answers"]) == {"trained", "shuffled"} and 0 <= row["chance"] <= 1
        assert row["train_seconds"] > 0 and 0 < row["distinct_answers"] <= 1
        assert set(row["mcq"]) == {"trained", "shuffled", "text-only"} and row["mcq_chance"] == 0.25
        assert 0 <= row["mcq_answered"] <= 1
    # one extraction for all of them, and each run folder says which recipe it is
    assert len(list((out / "cache.zarr").glob("zarr.json"))) == 1
    runs = out / "runs"
    kinds = {n: json.loads((runs / f"variant-{n}" / "adapter_config.json").read_text())
             for n in rows}
    assert kinds["mlp"]["kind"] == "mlp" and kinds["linear"]["kind"] == "linear"
    assert kinds["resampler"]["kind"] == "resampler"
    assert kinds["resampler"]["t"] == 5 * kinds["resampler"]["stride"]   # 5 sub-windows a token
    assert kinds["lora"]["lora"]["r"] == 8 and kinds["linear"]["lora"] is None
    table = (out / "report" / "variants.md").read_text()
    assert "| variant | LLM | answers trained |" in table and "| MCQ trained | MCQ shuffled |" in table


def test_an_unknown_variant_fails_before_any_work(tmp_path, capsys):
    from musilingo.demo.variants import parse_variants

    with pytest.raises(UserError, match="'mpl' is not a demo variant; use some of linear, mlp"):
        parse_variants("linear,mpl")
    code, _, err = run_cli(capsys, "demo", "--variants", "mpl", "--out", str(tmp_path / "x"))
    assert code == 2 and not (tmp_path / "x" / "data").exists()


def test_no_variant_at_all_fails_at_once_and_duplicates_run_once(tmp_path, capsys):
    from musilingo.demo.variants import parse_variants

    assert parse_variants("mlp, linear,mlp") == ["mlp", "linear"]
    code, _, err = run_cli(capsys, "demo", "--variants", ",", "--out", str(tmp_path / "x"))
    assert code == 2 and "names no variant" in err and not (tmp_path / "x" / "data").exists()
