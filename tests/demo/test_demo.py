"""The quick demo, end to end through the real CLI: it must learn, and it must listen.

One run (module-scoped) of `musilingo demo --quick` with a fixed seed; the assertions read its
report. The margins are the issue's: trained attribute accuracy far above chance and clearly above
the same adapter hearing shuffled audio. A broken cache, adapter, splice, label mask or trainer
leaves the trained adapter at the shuffled/untrained level and fails here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from pathlib import Path

import pytest

# A listening model: at least this far above the shuffled-audio control and above chance.
MIN_MARGIN_OVER_SHUFFLED = 0.15
MIN_MARGIN_OVER_CHANCE = 0.15
# A guard against a hung run, not a speed limit: the quick demo takes 5-9 minutes on 2 cores
# (benchmarks/README.md, "Demo"), and more when another job shares them.
HANG = 2700


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "quick"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "musilingo", "demo", "--quick", "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, env=env, timeout=HANG)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    return out, metrics, proc.stdout


@pytest.mark.slow
def test_quick_demo_writes_the_report(quick_demo):
    out, metrics, stdout = quick_demo
    report = out / "report"
    for name in ("metrics.json", "summary.md", "samples.md", "loss.png", "accuracy.png"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    assert (report / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Attribute accuracy" in (report / "summary.md").read_text()
    assert "## Four-option questions (96;" in (report / "summary.md").read_text()
    assert "Listening margin" in stdout
    # the LLM's first-use build is a step of its own, timed in the report
    assert "demo: 3/6 preparing the LLM tiny-lm" in stdout and "llm" in metrics["seconds"]
    assert "llm " in (report / "summary.md").read_text().split("## Time (seconds)")[1]
    assert set(metrics["conditions"]) == {"untrained", "trained", "shuffled", "text-only"}
    assert "| attribute | chance | untrained | trained | shuffled audio | text only |" in \
        (report / "summary.md").read_text()
    # every metric of the protocol ran (or says why not): nothing silently dropped
    qa = metrics["conditions"]["trained"]["qa_metrics"]
    for name in ("B-U", "ROUGE-L", "BERTScore-R"):
        assert qa[name] is not None, (name, qa.get("_missing"))


@pytest.mark.slow
def test_quick_demo_learns_and_listens(quick_demo):
    _, metrics, _ = quick_demo
    acc = {k: v["accuracy"]["mean"] for k, v in metrics["conditions"].items()}
    chance = metrics["mean_chance"]
    assert acc["trained"] >= chance + MIN_MARGIN_OVER_CHANCE, (acc, chance)
    assert acc["trained"] >= acc["shuffled"] + MIN_MARGIN_OVER_SHUFFLED, acc
    assert acc["trained"] >= acc["untrained"] + MIN_MARGIN_OVER_CHANCE, acc
    assert metrics["listening_margin"] == pytest.approx(acc["trained"] - acc["shuffled"])
    # captions are scored on every attribute too, and the trained ones hear the clip
    cap = {k: v["caption_accuracy"]["mean"] for k, v in metrics["conditions"].items()}
    assert cap["trained"] >= cap["shuffled"] + 0.05, cap
    # four-option questions (chance 0.25), read by MuChoMusic's rule
    mcq = {k: v["mcq"]["accuracy"] for k, v in metrics["conditions"].items()}
    assert metrics["n_mcq"] == 24 * 4
    assert mcq["trained"] >= 0.25 + MIN_MARGIN_OVER_CHANCE, mcq
    assert mcq["trained"] >= mcq["shuffled"] + MIN_MARGIN_OVER_SHUFFLED, mcq
    assert mcq["trained"] >= mcq["text-only"] + MIN_MARGIN_OVER_SHUFFLED, mcq   # no audio at all
    assert metrics["conditions"]["trained"]["mcq"]["answered_rate"] >= 0.8


@pytest.mark.slow
def test_quick_demo_rerun_reuses_finished_steps(quick_demo, tmp_path):
    out, metrics, _ = quick_demo
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "musilingo", "demo", "--quick", "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, env=env, timeout=HANG)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "already trained" in proc.stdout
    again = json.loads((out / "report" / "metrics.json").read_text())
    # greedy decoding, same adapter, same cache: the same answers and accuracies
    assert again["conditions"]["trained"]["accuracy"] == metrics["conditions"]["trained"]["accuracy"]


def test_demo_help_names_the_models_it_uses():
    from click.testing import CliRunner

    from musilingo.demo.command import demo
    from musilingo.demo.recipe import DemoConfig

    out = CliRunner().invoke(demo, ["--help"], terminal_width=400, max_content_width=400).output
    text = " ".join(out.split())
    cfg = DemoConfig()
    assert f"[default: {cfg.llm}]" in text and f"[default: {cfg.encoder}]" in text
    assert DemoConfig.quick_preset().llm == cfg.llm      # --quick changes sizes, not models
    assert "--config smollm2" in text                # the real-LLM variant is findable
    assert "tiny-llama" not in text


def test_the_smollm2_demo_recipe_is_a_demo_config():
    from musilingo.demo.recipe import DemoConfig
    from musilingo.options import from_dict, load_recipe

    cfg = from_dict(DemoConfig, load_recipe("smollm2", "demo"), "demo")
    assert cfg.llm == "smollm2" and cfg.encoder == "musicnn-mtt" and cfg.batch_size == 8
    # The recipe that listens: each of its training keys is a TrainConfig key, in both stages.
    from musilingo.demo.recipe import _train_config
    from musilingo.demo.variants import variants

    t = _train_config(cfg, "instruct", Path("d"), Path("c.zarr"), Path("r"), None)
    assert (t.prompt, t.system(), t.lora_rank, t.dtype) == ("chat", "", 16, "bf16")
    assert t.lora_targets == "q_proj,k_proj,v_proj,o_proj" and t.max_steps == 1200
    assert variants()["smollm2-chat-lora"][0]["lora_rank"] == cfg.train["lora_rank"]
    assert cfg.out != DemoConfig().out      # its own folder: never reuses the default's runs


def test_sub_windows_that_do_not_divide_the_stride_fail_before_any_work(tmp_path):
    from musilingo.demo.recipe import DemoConfig, run_demo
    from musilingo.errors import UserError

    with pytest.raises(UserError, match="sub_windows=7 does not divide the stride 325"):
        run_demo(DemoConfig(out=str(tmp_path / "d"), sub_windows=7), log=lambda *_: None)
    assert not (tmp_path / "d").exists()


def test_train_keys_reach_both_stages_and_a_misspelt_one_fails_before_any_work(tmp_path):
    from musilingo.demo.recipe import DemoConfig, _train_config, run_demo
    from musilingo.errors import UserError

    cfg = DemoConfig(out=str(tmp_path / "d"), train={"dtype": "bf16", "lora_rank": 4,
                                                     "prompt": "chat", "system_prompt": "none"})
    for stage in ("pretrain", "instruct"):
        t = _train_config(cfg, stage, tmp_path, tmp_path / "c.zarr", tmp_path / "r", None)
        assert (t.dtype, t.lora_rank, t.prompt, t.system()) == ("bf16", 4, "chat", "")
        assert t.max_steps == (cfg.pretrain_steps if stage == "pretrain" else cfg.instruct_steps)
    with pytest.raises(UserError, match="unknown train key\\(s\\) lora_rnak"):
        run_demo(DemoConfig(out=str(tmp_path / "e"), train={"lora_rnak": 4}), log=lambda *_: None)
    assert not (tmp_path / "e").exists()
