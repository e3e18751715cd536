"""The `musilingo train` verb: a 2-process gloo run equals a 1-process run with the same global
batch; user errors exit 2 with one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from musilingo.train import run


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(folder):
    return [json.loads(x)["loss"] for x in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_gloo_processes_match_one(make_cfg, synth, cache, tmp_path):
    out2 = tmp_path / "two"
    args = ["--stage", "pretrain", "--dataset", "synth", "--annotations", str(synth / "captions.csv"),
            "--cache", str(cache), "--llm", "tiny-llama", "--t", "130", "--batch-size", "2",
            "--grad-accum", "2", "--max-steps", "3", "--lr", "3e-2", "--min-lr", "3e-3",
            "--warmup-steps", "1", "--dtype", "fp32", "--no-progress",
            "deepspeed=zero2", f"out={out2}", "num_workers=0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(_free_port()), "-m", "musilingo", "train", *args],
                          capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("adapter:") == 1          # rank 0 reports
    one = run(make_cfg(batch_size=4, grad_accum=2, max_steps=3, deepspeed="zero2",
                       out=str(tmp_path / "one")), log=lambda *a: None)
    assert _losses(out2) == pytest.approx(one.losses, rel=1e-5)


def test_user_errors_exit_2(tmp_path, capsys):
    from musilingo.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--config", "pretrain_msd", f"out={tmp_path / 'x'}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: data set 0 (msd) has no feature cache") and "\n" not in err
    with pytest.raises(SystemExit) as exc:
        main(["train", "--config", "pretrain_msd", "learning_rate=1"])
    assert exc.value.code == 2 and "unknown config key(s) learning_rate" in capsys.readouterr().err


def test_a_shipped_recipe_offline_names_the_llm_override_before_reading_data(cache, tmp_path,
                                                                          capsys, monkeypatch):
    """The paper's recipes name lmsys/vicuna-7b-v1.5: offline and not cached, `train` stops at
    once (before the annotations, here still null) instead of a minute and a half of retries."""
    from huggingface_hub import constants

    from musilingo.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(SystemExit) as exc:
        main(["train", "--config", "instruct_mi_short", f"cache={cache}", "t=130",
              f"out={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "\n" not in err, err
    assert "LLM 'lmsys/vicuna-7b-v1.5'" in err and "llm=smollm2" in err


def test_help_lists_config_fields():
    from click.testing import CliRunner

    from musilingo.train.command import train

    out = CliRunner().invoke(train, ["--help"]).output
    for flag in ("--batch-size", "--layer-aggregation", "--features", "--resume / --no-resume",
                 "--init-adapter", "--deepspeed"):
        assert flag in out
    assert "key=value" in out.lower() or "OVERRIDES" in out
    # The deepspeed launcher appends --local_rank=N to the command line.
    assert CliRunner().invoke(train, ["--local_rank=1", "--help"]).exit_code == 0


@pytest.mark.slow
def test_kill_9_then_resume_reproduces_the_losses(make_cfg, synth, cache, tmp_path):
    import signal
    import time

    out = tmp_path / "killed"
    args = ["--stage", "pretrain", "--dataset", "synth", "--annotations", str(synth / "captions.csv"),
            "--cache", str(cache), "--llm", "tiny-llama", "--t", "130", "--batch-size", "2",
            "--max-steps", "40", "--lr", "3e-2", "--min-lr", "3e-3", "--warmup-steps", "2",
            "--dtype", "fp32", "--deepspeed", "zero2", "--save-every", "2", "--num-workers", "1",
            "--no-progress", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    log = (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "musilingo", "train", *args], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    latest = out / "resume" / "latest"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if latest.is_file() and latest.read_text().strip() >= "step-00000006":
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    code = proc.wait()
    log.close()
    assert code == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
    done = len((out / "metrics.jsonl").read_text().splitlines())
    assert 6 <= done < 40
    resumed = subprocess.run([sys.executable, "-m", "musilingo", "train", *args, "--resume"],
                             env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout
    full = run(make_cfg(batch_size=2, max_steps=40, warmup_steps=2, deepspeed="zero2",
                        out=str(tmp_path / "full")), log=lambda *a: None)
    assert _losses(out) == full.losses


def test_the_deepspeed_launchers_local_rank_argument_is_accepted(monkeypatch):
    from musilingo.cli import launcher_args

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert launcher_args(["--local_rank=1", "train", "--stage", "pretrain"]) == \
        ["train", "--stage", "pretrain"]
    assert os.environ["LOCAL_RANK"] == "1"
    assert launcher_args(["train", "--local_rank", "0", "x=1"]) == ["train", "x=1"]


@pytest.mark.slow
@pytest.mark.parametrize("no_local_rank", [False, True])
def test_deepspeed_launcher_with_two_cpu_processes(make_cfg, synth, cache, tmp_path, no_local_rank):
    """`deepspeed --num_gpus 2 --module musilingo train ...` (with and without --no_local_rank)
    trains like one process with the same global batch."""
    out = tmp_path / "ds"
    launcher = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2",
                "--master_port", str(_free_port())] + (["--no_local_rank"] if no_local_rank else [])
    args = ["--stage", "pretrain", "--dataset", "synth", "--annotations",
            str(synth / "captions.csv"), "--cache", str(cache), "--llm", "tiny-llama", "--t", "130",
            "--batch-size", "2", "--grad-accum", "2", "--max-steps", "2", "--lr", "3e-2",
            "--min-lr", "3e-3", "--warmup-steps", "1", "--dtype", "fp32", "--no-progress",
            "deepspeed=zero2", f"out={out}", "num_workers=0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([*launcher, "--module", "musilingo", "train", *args],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "2 processes per step" in proc.stdout
    one = run(make_cfg(batch_size=4, grad_accum=2, max_steps=2, deepspeed="zero2",
                       out=str(tmp_path / "one")), log=lambda *a: None)
    assert _losses(out) == pytest.approx(one.losses, rel=1e-5)


@pytest.mark.slow
def test_two_nodes_train_like_one_process(make_cfg, synth, cache, tmp_path):
    """torchrun --nnodes 2 --nproc_per_node 1 (c10d rendezvous on loopback, gloo) under DeepSpeed
    ZeRO-2: the losses of a 1-process run with the same global batch."""
    from tests.helpers.multinode import two_nodes

    out2 = tmp_path / "nodes"
    args = ["-m", "musilingo", "train", "--stage", "pretrain", "--dataset", "synth",
            "--annotations", str(synth / "captions.csv"), "--cache", str(cache), "--llm",
            "tiny-llama", "--t", "130", "--batch-size", "2", "--grad-accum", "2",
            "--max-steps", "3", "--lr", "3e-2", "--min-lr", "3e-3", "--warmup-steps", "1",
            "--dtype", "fp32", "--no-progress", "deepspeed=zero2", f"out={out2}",
            "num_workers=0"]
    results = two_nodes(args, timeout=240)
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    assert "".join(r.stdout for r in results).count("adapter:") == 1      # rank 0 reports
    one = run(make_cfg(batch_size=4, grad_accum=2, max_steps=3, deepspeed="zero2",
                       out=str(tmp_path / "one")), log=lambda *a: None)
    assert _losses(out2) == pytest.approx(one.losses, rel=1e-5)
