"""Crash consistency of a training checkpoint save, at every write, not a sample (issue 34).

A LoRA run (6 steps, a save every 2) is killed (`os._exit(9)`, what kill -9 leaves) just before
each write of its save at step 4 in turn: the adapter's and the LoRA's files (each a temporary
then a rename), the DeepSpeed engine state, trainer.json, the rename of the resume folder, the
`latest` marker and the removal of step 2's state. The save at step 4 is the interesting one:
it replaces a complete earlier state. Then the same command runs again with resume=true (what
the refusal of a re-used run folder tells the user) and the run must end as an uninterrupted
one: the same adapter and LoRA tensors, the same configs, the same logged steps and losses, the
same resume state, and no other file.
"""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers.crash import files, kill_at_every_write

JOB = r'''
import json
from pathlib import Path

import musilingo.train.trainer as trainer
from musilingo.train.config import TrainConfig

CONFIG = json.loads({config!r})
save = trainer.Trainer.save
# Once in the parent, so that no fork pays them: transformers loads its model, tokenizer and
# PEFT modules lazily on first use (~6 s of every run here), DeepSpeed its engine's.
import deepspeed  # noqa: E402,F401
import peft  # noqa: E402,F401
from musilingo.models.llm import load_llm  # noqa: E402

load_llm(CONFIG["llm"])


def counted_save(self, step):
    arm(step == 4)  # only the writes of this one checkpoint save are kill points
    save(self, step)
    arm(False)


def job(work, arm_writes):
    global arm
    arm = arm_writes
    trainer.Trainer.save = counted_save
    trainer.run(TrainConfig.from_dict(dict(CONFIG, out=str(work / "run"))), log=lambda *_: None)


def again(work):  # what the refusal of a re-used run folder says: the same command, resume=true
    trainer.Trainer.save = save
    result = trainer.run(TrainConfig.from_dict(dict(CONFIG, out=str(work / "run"), resume=True)),
                         log=lambda *_: None)
    assert result.steps == 6, result.steps
'''


def observed(run_dir) -> dict:
    """What a user of the run folder sees, without wall-clock figures and TensorBoard files."""
    from musilingo.train.checkpoint import TRAINER_STATE, latest_resume

    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    resume = latest_resume(run_dir)
    trainer_state = json.loads((resume / TRAINER_STATE).read_text())
    return {"adapter": load_file(str(run_dir / "adapter.safetensors")),
            "lora": load_file(str(run_dir / "lora" / "adapter_model.safetensors")),
            "configs": [(run_dir / n).read_text() for n in ("adapter_config.json",
                                                             "lora/adapter_config.json")],
            "metrics": [(m["step"], m["loss"], m["lr"]) for m in metrics],
            "resume": (resume.name, {k: v for k, v in trainer_state.items() if k != "rng"}),
            "files": [f for f in files(run_dir) if "events.out.tfevents" not in f]}


def same(a: dict, b: dict) -> list[str]:
    """The keys of `observed` that differ (tensors bit for bit)."""
    out = [k for k in a if k not in ("adapter", "lora") and a[k] != b[k]]
    for k in ("adapter", "lora"):
        if a[k].keys() != b[k].keys() or not all(torch.equal(a[k][n], b[k][n]) for n in a[k]):
            out.append(k)
    return out


@pytest.mark.slow
def test_checkpoint_save_killed_at_every_write_resumes_to_an_uninterrupted_run(make_cfg, synth,
                                                                              tmp_path):
    config = make_cfg(stage="instruct", datasets=[{"name": "synth", "annotations": str(synth)}],
                      lora_rank=4, lora_targets="q_proj,v_proj", batch_size=4, standardize=True,
                      max_steps=6, save_every=2, num_workers=0).to_dict()
    writes, killed = kill_at_every_write(JOB.format(config=json.dumps(config)),
                                         tmp_path / "kills", what="files")
    expected = observed(tmp_path / "kills" / "reference" / "run")
    assert writes >= 10 and expected["resume"][0] == "step-00000006", writes
    for k, work in enumerate(killed, start=1):  # killed, then the same command, resume=true
        differ = same(observed(work / "run"), expected)
        assert not differ, f"killed before write {k} of {writes}: {differ} differ"
    print(f"checkpoint save: {writes} writes, {len(killed)} kills, all recovered")
