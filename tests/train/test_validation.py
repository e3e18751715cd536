"""Validation during training: held-out clips, the loss every N steps, the best adapter kept,
early stopping, and a resumed run that continues the same curve."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from musilingo.errors import UserError
from musilingo.train import run
from musilingo.train.validation import split_clips


def quiet(*_a, **_k):
    pass


def test_held_out_clips_leave_training_whole(make_cfg):
    from musilingo.train.data import TrainSet
    from musilingo.data import Item

    examples = [Item(f"f:{i}", f"clip{i % 10}", "Q?", "A.") for i in range(40)]
    ts = TrainSet("x", examples, None, 0, [])
    (train,), (val,) = split_clips([ts], 0.3, seed=1)
    train_clips, val_clips = {e.clip_id for e in train.examples}, {e.clip_id for e in val.examples}
    assert not train_clips & val_clips and train_clips | val_clips == {f"clip{i}" for i in range(10)}
    assert len(train.examples) + len(val.examples) == 40
    assert split_clips([ts], 0.3, seed=1)[1][0].examples == val.examples        # seeded
    with pytest.raises(UserError, match="too few to hold some out"):
        split_clips([TrainSet("y", examples[:1], None, 0, [])], 0.3, seed=1)


def test_validation_curve_best_adapter_and_early_stop(make_cfg, tmp_path):
    cfg = make_cfg(val_fraction=0.25, val_every=5, max_steps=20, batch_size=4,
                   out=str(tmp_path / "v"))
    r = run(cfg, log=quiet)
    rows = [json.loads(x) for x in (r.run_dir / "validation.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows] == [5, 10, 15, 20]
    assert r.val_best == min(x["val_loss"] for x in rows) and rows[-1]["best"] == r.val_best
    best = load_file(str(r.run_dir / "best" / "adapter.safetensors"))
    assert set(best) == set(load_file(str(r.run_dir / "adapter.safetensors")))
    # early stopping: a learning rate so high that the held-out loss stops improving
    wild = run(make_cfg(val_fraction=0.25, val_every=1, early_stop=2, max_steps=30, lr=30.0,
                        min_lr=30.0, warmup_steps=0, grad_clip=0.0, batch_size=4,
                        out=str(tmp_path / "w")), log=quiet)
    rows = [json.loads(x) for x in (wild.run_dir / "validation.jsonl").read_text().splitlines()]
    assert wild.early_stopped and wild.steps < 30 and len(rows) == wild.steps
    assert (wild.run_dir / "adapter.safetensors").is_file()


def test_validation_on_resume_continues_the_curve(make_cfg, tmp_path):
    kw = dict(val_fraction=0.25, val_every=2, max_steps=6, save_every=2, batch_size=4)
    run(make_cfg(out=str(tmp_path / "full"), **kw), log=quiet)
    run(make_cfg(out=str(tmp_path / "part"), stop_after=4, **kw), log=quiet)
    run(make_cfg(out=str(tmp_path / "part"), resume=True, **kw), log=quiet)
    a = [json.loads(x) for x in (tmp_path / "full" / "validation.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "part" / "validation.jsonl").read_text().splitlines()]
    assert [x["step"] for x in b] == [2, 4, 6]
    assert [x["val_loss"] for x in b] == pytest.approx([x["val_loss"] for x in a], rel=1e-5)
    assert torch.equal(load_file(str(tmp_path / "full" / "best" / "adapter.safetensors"))["proj.weight"],
                       load_file(str(tmp_path / "part" / "best" / "adapter.safetensors"))["proj.weight"])
