"""End-to-end training on a tiny random Llama and a tiny-encoder cache: learning, run folder,
ZeRO stages, resume, stage-2 initialisation, and the refusals of bad input."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
import yaml

from musilingo.errors import UserError
from musilingo.runs.adapter_file import load_model
from musilingo.train import run
from musilingo.train.config import TrainConfig
from tests.helpers.exploit import Exploit


def quiet(*_a, **_k):
    pass


def test_loss_falls_and_run_folder_is_complete(make_cfg):
    import importlib

    importlib.import_module("deepspeed")  # it sets PYTORCH_NVML_BASED_CUDA_CHECK: not ours

    cfg = make_cfg(batch_size=8, max_steps=40, standardize=True, log_every=1)
    before = {k: v for k, v in os.environ.items() if k != "LOCAL_RANK"}
    r = run(cfg, log=quiet)
    # A lone process makes its own one-member group: no RANK/WORLD_SIZE/MASTER_PORT left behind
    # for the processes it starts later to trip over.
    assert {k: v for k, v in os.environ.items() if k != "LOCAL_RANK"} == before
    first, last = sum(r.losses[:3]) / 3, sum(r.losses[-5:]) / 5
    assert last < first - 0.8, r.losses
    assert r.steps == 40 and not r.stopped_early
    folder = r.run_dir
    rows = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows] == list(range(1, 41))
    # Warmup from 1e-6 (1 step), then the reference's cosine whose phase counts all 40 steps.
    cosine = [3e-3 + (3e-2 - 3e-3) * 0.5 * (1 + math.cos(math.pi * s / 40)) for s in range(1, 40)]
    assert [x["lr"] for x in rows] == pytest.approx([1e-6] + cosine)
    assert [x["loss"] for x in rows] == pytest.approx(r.losses)
    assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
    saved = TrainConfig.from_dict(yaml.safe_load((folder / "config.yaml").read_text()))
    assert saved == cfg
    acfg = json.loads((folder / "adapter_config.json").read_text())
    assert acfg["stride"] == 65 and acfg["t"] == 130 and acfg["encoder_dim"] == 128
    assert acfg["num_layers"] == 3 and acfg["llm"] == "tiny-llama" and acfg["standardized"]
    assert acfg["encoder"]["encoder"] == "tiny" and acfg["template"]["name"] == "caption"
    # The saved adapter rebuilds a model for inference, normalisation included.
    model = load_model(folder)
    assert model.adapter.feature_std.min() > 0 and not torch.all(model.adapter.feature_mean == 0)
    assert (folder / "resume" / "latest").read_text().strip() == "step-00000040"


@pytest.mark.parametrize("stage", ["zero2_offload", "zero3_offload"])
def test_zero_offload_stages_train_like_zero0(make_cfg, tmp_path, stage):
    ref = run(make_cfg(out=str(tmp_path / "z0")), log=quiet)
    got = run(make_cfg(deepspeed=stage, out=str(tmp_path / stage)), log=quiet)
    assert got.losses == pytest.approx(ref.losses, rel=1e-5)
    a = load_model(ref.run_dir).adapter.proj.weight
    b = load_model(got.run_dir).adapter.proj.weight
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_zero_steps_saves_the_initial_adapter(make_cfg):
    r = run(make_cfg(max_steps=0), log=quiet)
    assert r.steps == 0 and r.final_loss is None and r.adapter.is_file()
    assert load_model(r.run_dir).config.t == 130


def test_zero3_bf16_trains_learned_layer_weights(make_cfg):
    # ZeRO-3 partitions every parameter, the 1-d layer weights included; bf16 casts the inputs.
    r = run(make_cfg(deepspeed="zero3", dtype="bf16", max_steps=3, layer_aggregation="learned"),
            log=quiet)
    assert len(r.losses) == 3 and all(10 < x < 14 for x in r.losses)
    model = load_model(r.run_dir)
    w = torch.softmax(model.adapter.layer_logits, 0)
    assert model.config.layer_aggregation == "learned"
    assert not torch.allclose(w, torch.full((3,), 1 / 3))


def test_bf16_on_the_cpu_follows_fp32(make_cfg, tmp_path):
    """dtype=bf16 on the CPU (the frozen LLM in bf16: 1.7x the samples/s of fp32 for SmolLM2 on
    an AVX512-BF16 CPU, benchmarks/README.md): the same first loss to 2%, the same descent, and
    an fp32 adapter file."""
    full = run(make_cfg(max_steps=6, out=str(tmp_path / "fp32")), log=quiet)
    half = run(make_cfg(max_steps=6, dtype="bf16", out=str(tmp_path / "bf16")), log=quiet)
    assert half.losses[0] == pytest.approx(full.losses[0], rel=2e-2)
    assert half.losses[-1] == pytest.approx(full.losses[-1], rel=1e-1)
    assert half.losses[-1] < half.losses[0]
    from safetensors.torch import load_file

    assert all(v.dtype == torch.float32 for v in load_file(str(half.adapter)).values())


def test_resume_reproduces_an_uninterrupted_run(make_cfg, tmp_path):
    kw = dict(max_steps=7, save_every=3, grad_accum=2, batch_size=2, num_workers=1)
    full = run(make_cfg(out=str(tmp_path / "full"), **kw), log=quiet)
    part = run(make_cfg(out=str(tmp_path / "part"), stop_after=5, **kw), log=quiet)
    assert part.stopped_early and part.steps == 5
    # The "killed" run logged steps 4-5 past its last resume state (step 3): they are redone.
    rest = run(make_cfg(out=str(tmp_path / "part"), resume=True, **kw), log=quiet)
    assert rest.steps == 7 and len(rest.losses) == 4
    assert part.losses[:3] + rest.losses == full.losses   # exact, step by step
    rows = [json.loads(x) for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows] == list(range(1, 8))
    w_full = load_model(full.run_dir).adapter.proj.weight
    w_rest = load_model(rest.run_dir).adapter.proj.weight
    assert torch.equal(w_full, w_rest)


def test_resuming_a_finished_run_says_so(make_cfg, tmp_path):
    cfg = make_cfg(out=str(tmp_path / "done"), max_steps=2)
    run(cfg, log=quiet)
    logs: list[str] = []
    again = run(make_cfg(out=str(tmp_path / "done"), max_steps=2, resume=True),
                log=logs.append)
    assert again.steps == 2 and again.losses == []
    last = [m for m in logs if "step 2/2" in m][-1]
    assert last.startswith("already finished at step 2/2 (last logged loss ") and "nan" not in last


def test_resume_refuses_a_different_config_and_reuse_needs_resume(make_cfg, tmp_path):
    out = str(tmp_path / "r")
    run(make_cfg(out=out, max_steps=2, save_every=1), log=quiet)
    with pytest.raises(UserError, match="different config.*lr"):
        run(make_cfg(out=out, max_steps=2, lr=1e-3, resume=True), log=quiet)
    with pytest.raises(UserError, match="already holds a run"):
        run(make_cfg(out=out, max_steps=2), log=quiet)


def test_instruct_stage_starts_from_the_stage1_adapter(make_cfg, synth, tmp_path):
    stage1 = run(make_cfg(out=str(tmp_path / "s1"), max_steps=3, standardize=True), log=quiet)
    qa = [{"name": "synth", "annotations": str(synth)}]
    stage2 = make_cfg(stage="instruct", datasets=qa, out=str(tmp_path / "s2"), max_steps=1,
                      lr=1e-9, min_lr=1e-9, warmup_lr=1e-9, init_adapter=str(stage1.run_dir))
    r = run(stage2, log=quiet)
    a, b = load_model(stage1.run_dir), load_model(r.run_dir)
    torch.testing.assert_close(a.adapter.proj.weight, b.adapter.proj.weight, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(a.adapter.feature_mean, b.adapter.feature_mean)
    assert b.template.name == "instruct" and b.config.standardized


def test_bad_input_is_refused_with_clear_errors(make_cfg, synth, cache, tmp_path):
    with pytest.raises(UserError, match="not a multiple of the cache stride 65"):
        run(make_cfg(t=100), log=quiet)
    with pytest.raises(UserError, match="no feature cache"):
        run(make_cfg(cache=None), log=quiet)
    with pytest.raises(UserError, match="question/answer records"):
        run(make_cfg(datasets=[{"name": "synth", "annotations": str(synth)}]), log=quiet)
    # An annotation row whose clip is not in the cache: skipped and counted, fatal past the limit.
    rows = (synth / "captions.csv").read_text().splitlines()
    extra = tmp_path / "captions.csv"
    extra.write_text("\n".join(rows + [rows[1].replace("train_0000", "train_9999")]) + "\n")
    one = [{"name": "musiccaps", "annotations": str(extra), "audio_root": str(synth / "audio"),
            "split": None}]
    with pytest.raises(UserError, match=r"1 of 17 rows .* have no features.*train_9999"):
        run(make_cfg(datasets=one), log=quiet)
    r = run(make_cfg(datasets=one, max_missing_fraction=0.1, max_steps=1,
                     out=str(tmp_path / "skip")), log=quiet)
    assert r.skipped == {"musiccaps": 1}
    empty = tmp_path / "empty.csv"
    empty.write_text(rows[0] + "\n")
    with pytest.raises(UserError, match="has no records"):
        run(make_cfg(datasets=[{"name": "musiccaps", "annotations": str(empty), "split": None}]),
            log=quiet)
    # A cache of another width than the adapter being continued.
    other = tmp_path / "other"
    other.mkdir()
    from musilingo.models.adapter_config import AdapterConfig
    from musilingo.runs.adapter_file import save_adapter

    first = run(make_cfg(out=str(tmp_path / "w"), max_steps=1), log=quiet)
    cfg = json.loads((first.run_dir / "adapter_config.json").read_text())
    cfg["encoder_dim"] = 256
    save_adapter(other, AdapterConfig.from_json(cfg, "x"),
                 {"proj.weight": torch.zeros(64, 256), "proj.bias": torch.zeros(64),
                  "feature_mean": torch.zeros(256), "feature_std": torch.ones(256)})
    with pytest.raises(UserError, match=r"init_adapter .*other: the adapter expects features "
                                        r"256 wide \(encoder_dim\), but this run's features "
                                        "gives 128"):
        run(make_cfg(init_adapter=str(other)), log=quiet)
    # An LLM folder without a tokenizer.
    from musilingo.models.llm import tiny_llama_folder

    llm = tmp_path / "llm"
    llm.mkdir()
    for name in ("config.json", "model.safetensors"):
        (llm / name).write_bytes((tiny_llama_folder() / name).read_bytes())
    with pytest.raises(UserError, match="has no tokenizer"):
        run(make_cfg(llm=str(llm)), log=quiet)
    with pytest.raises(UserError, match="max_steps=-1 is out of range"):
        run(make_cfg(max_steps=-1), log=quiet)
    with pytest.raises(UserError, match="fp16 needs a GPU"):
        run(make_cfg(dtype="fp16"), log=quiet)


def test_an_mlp_adapter_in_the_llms_chat_template_trains_from_the_same_cache(make_cfg, synth):
    """One cache, another recipe: a two-layer MLP adapter and SmolLM2's own chat template (the
    tiny-llama preset carries SmolLM2's tokenizer). The run folder says which variant it is, and
    the model it loads answers through the same generation path, stopping at <|im_end|>."""
    from musilingo.infer.config import GenerationConfig
    from musilingo.infer.generation import chat_example, generate, prompt_example

    qa = [{"name": "synth", "annotations": str(synth)}]
    r = run(make_cfg(stage="instruct", datasets=qa, adapter="mlp", prompt="chat", max_steps=40,
                     batch_size=8, standardize=True), log=quiet)
    assert sum(r.losses[-5:]) / 5 < sum(r.losses[:3]) / 3 - 0.5, r.losses
    acfg = json.loads((r.run_dir / "adapter_config.json").read_text())
    assert acfg["kind"] == "mlp" and acfg["template"]["name"] == "chat-instruct"
    assert acfg["template"]["end"] == "<|im_end|>" and acfg["template"]["bos"] is False
    saved = yaml.safe_load((r.run_dir / "config.yaml").read_text())
    assert (saved["adapter"], saved["prompt"]) == ("mlp", "chat")
    model = load_model(r.run_dir)
    assert model.adapter.hidden is not None and model.adapter.proj.in_features == 64
    one = prompt_example(model, "What instrument is playing?")
    assert chat_example(model, [("What instrument is playing?", None)]) == one
    two = chat_example(model, [("What instrument is playing?", "Piano."), ("And the tempo?", None)])
    text = model.tokenizer.decode(two.after)
    assert "Piano.<|im_end|>\n<|im_start|>user\nAnd the tempo?<|im_end|>\n<|im_start|>assistant" \
        in text
    rng = torch.Generator().manual_seed(0)
    feats = (torch.randn(3, 4, 128, generator=rng).numpy(), np.full(4, 65, np.int32))
    out = generate(model, [one], [feats], GenerationConfig(max_new_tokens=5))
    assert isinstance(out[0].answer, str) and out[0].new_tokens <= 5
    # a stage-2 run cannot start from an adapter of another kind
    with pytest.raises(UserError, match="is a mlp adapter but this run trains adapter=linear"):
        run(make_cfg(stage="instruct", datasets=qa, init_adapter=str(r.run_dir), max_steps=1,
                     out=str(r.run_dir.parent / "lin")), log=quiet)


def test_a_resampler_adapter_trains_from_the_same_cache_and_reloads(make_cfg, synth):
    """adapter=resampler on the stride-65 cache (2 sub-windows per t=130 token): it trains, its
    query and keys move, the run folder says which kind it is, the reloaded model gives the
    trained adapter's tokens, and exported model cards describe it."""
    from musilingo.runs.export import adapter_text

    qa = [{"name": "synth", "annotations": str(synth)}]
    r = run(make_cfg(stage="instruct", datasets=qa, adapter="resampler", max_steps=30,
                     batch_size=8, standardize=True), log=quiet)
    assert sum(r.losses[-5:]) / 5 < sum(r.losses[:3]) / 3 - 0.5, r.losses
    acfg = json.loads((r.run_dir / "adapter_config.json").read_text())
    assert acfg["kind"] == "resampler" and acfg["stride"] == 65 and acfg["t"] == 130
    model = load_model(r.run_dir)
    assert model.config.kind == "resampler" and model.adapter.keys.weight.abs().sum() > 0
    rng = torch.Generator().manual_seed(0)
    feats = torch.randn(1, 3, 10, 128, generator=rng)
    counts = torch.full((1, 10), 65, dtype=torch.int32)
    x, _ = model.adapter.pooled(feats, counts)
    mean = (feats.mean(1).unflatten(1, (5, 2)).mean(2) - model.adapter.feature_mean) / \
        model.adapter.feature_std
    assert not torch.allclose(x, mean, atol=1e-4)   # learned weights, not the plain re-pooling
    assert "attending over each window's cached sub-windows (stride 65)" in \
        adapter_text(model.config)


def test_a_new_adapter_kind_is_one_class_and_one_registry_row(make_cfg, synth, monkeypatch):
    """A kind added from outside the package: a subclass of AudioAdapter with its own rule, and
    one `register_adapter` row. It trains from the cache, is recorded in and reloaded from the
    run folder, is described in the model card, and its rule refuses before the LLM loads."""
    from torch import nn

    from musilingo.models.adapter_config import ADAPTERS, register_adapter
    from musilingo.models.adapters import AudioAdapter
    from musilingo.runs.export import adapter_text

    class GatedAdapter(AudioAdapter):
        """The paper's Linear, times a learned gate per LLM dimension."""

        @classmethod
        def check(cls, config):
            if config.t > 1000:
                raise UserError(f"adapter=gated: t={config.t}, use 1000 frames or fewer")

        def build_layers(self, encoder_dim, llm_dim):
            self.proj = nn.Linear(encoder_dim, llm_dim)
            self.gate = nn.Parameter(torch.ones(llm_dim))

        def project(self, x):
            return self.proj(x) * self.gate

    register_adapter("gated", GatedAdapter, "`Linear({encoder_dim}, {llm_dim})` times a gate")
    try:
        qa = [{"name": "synth", "annotations": str(synth)}]
        r = run(make_cfg(stage="instruct", datasets=qa, adapter="gated", max_steps=20,
                         batch_size=8, standardize=True), log=quiet)
        assert sum(r.losses[-5:]) / 5 < sum(r.losses[:3]) / 3 - 0.3, r.losses
        assert json.loads((r.run_dir / "adapter_config.json").read_text())["kind"] == "gated"
        model = load_model(r.run_dir)
        assert isinstance(model.adapter, GatedAdapter)
        assert not torch.allclose(model.adapter.gate, torch.ones(64))     # it trained
        assert "`Linear(128, 64)` times a gate over the mean of 3" in adapter_text(model.config)

        def no_llm(*_a, **_k):
            raise AssertionError("the LLM was loaded before the adapter's rules were checked")

        monkeypatch.setattr("musilingo.models.llm.load_llm", no_llm)
        with pytest.raises(UserError, match="adapter=gated: t=1040"):
            run(make_cfg(stage="instruct", datasets=qa, adapter="gated", t=1040,
                         out=str(r.run_dir.parent / "long")), log=quiet)
        with pytest.raises(UserError, match="stride 65 = t 65 leaves one"):
            run(make_cfg(stage="instruct", datasets=qa, adapter="resampler", t=65,
                         out=str(r.run_dir.parent / "one")), log=quiet)
    finally:
        ADAPTERS.pop("gated")
    with pytest.raises(UserError, match="adapter='gated': use one of linear, mlp, resampler"):
        make_cfg(adapter="gated")


def test_a_diverging_run_stops_with_one_line_and_keeps_its_last_good_adapter(make_cfg, tmp_path,
                                                                              capsys):
    """A learning rate of 1e30 without warmup or clipping: the first steps are finite (and
    saved), then the loss is not. The run stops there with exit 2 and one line; the last good
    adapter stays; an adapter file holding NaN is refused wherever it is loaded."""
    from musilingo.runs.adapter_file import load_adapter, save_adapter
    from tests.helpers.cli import run_cli

    out = tmp_path / "div"
    with pytest.raises(UserError, match=r"training stopped at step \d: (the loss is (nan|inf)|"
                                        r"the adapter's \S+ holds NaN or Inf).*kept; lower lr"
                       ) as info:
        run(make_cfg(out=str(out), lr=1e30, min_lr=1e30, warmup_steps=0, grad_clip=0.0,
                     max_steps=8, save_every=1), log=quiet)
    step = int(str(info.value).split("at step ")[1].split(":")[0])
    assert step > 1 and f"step-{step - 1:08d}" in str(info.value)
    cfg, state = load_adapter(out)
    assert all(v.isfinite().all() for v in state.values())
    code, _, err = run_cli(capsys, "train", "--config", str(out / "config.yaml"), "resume=false",
                           f"out={tmp_path / 'div2'}", "save_every=1")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and f"training stopped at step {step}" in errors[0]
    state["proj.weight"][0, 0] = float("nan")
    save_adapter(tmp_path / "nan", cfg, state)
    with pytest.raises(UserError, match="'proj.weight' holds NaN or Inf"):
        load_model(tmp_path / "nan")


def test_a_pickled_object_in_the_saved_state_is_refused_without_running(make_cfg, tmp_path):
    """Resume loads DeepSpeed's .pt files with weights_only: a planted object is refused with one
    line that says what to delete, and torch's 'weights_only=False' advice is not repeated."""
    from musilingo.train.checkpoint import latest_resume

    out = tmp_path / "r"
    run(make_cfg(out=str(out), max_steps=3, save_every=1, stop_after=2), log=quiet)
    states = sorted((latest_resume(out)).rglob("*model_states.pt"))
    assert states
    marker = tmp_path / "PWNED"
    torch.save({"module": Exploit(marker)}, states[0])
    with pytest.raises(UserError, match="holds Python objects other than tensors") as info:
        run(make_cfg(out=str(out), max_steps=3, save_every=1, resume=True), log=quiet)
    assert "weights_only=False" not in str(info.value) and not marker.exists()


def test_a_failed_checkpoint_write_exits_3_and_keeps_the_last_complete_state(make_cfg, tmp_path,
                                                                             capsys):
    """Before: a write refused mid-file surfaced as torch's "unexpected pos" (exit 1, a bug).
    The write is really refused here: a file-size limit (RLIMIT_FSIZE) that the small adapter
    file fits under and the resume state does not, as a full disk refuses the biggest file."""
    import resource
    import signal

    from musilingo.train.checkpoint import latest_resume
    from tests.helpers.cli import run_cli

    out = tmp_path / "run"
    kw = dict(out=str(out), max_steps=4, save_every=1)
    run(make_cfg(stop_after=1, **kw), log=quiet)
    first = latest_resume(out)
    assert first.name == "step-00000001"
    biggest = max(p.stat().st_size for p in first.rglob("*") if p.is_file())
    adapter = (out / "adapter.safetensors").stat().st_size
    assert adapter * 2 < biggest
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # write() then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (adapter * 2, hard))
    try:
        code, _, err = run_cli(capsys, "train", "--config", str(out / "config.yaml"),
                               "resume=true", "stop_after=null")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 3, err
    assert len(errors) == 1 and "step-00000002" in errors[0] and "run the same command" in errors[0]
    assert "refused the write" in errors[0] and "a bug" not in errors[0]
    assert latest_resume(out).name == "step-00000001"           # the last complete state
    assert not list((out / "resume").glob(".tmp-*"))             # nothing half-written left
    done = run(make_cfg(resume=True, **kw), log=quiet)          # the same command, space back
    assert done.steps == 4


def test_a_full_disk_reported_by_safetensors_is_an_environment_error(tmp_path):
    """safetensors reports a full disk as SafetensorError("... Os { code: 28 ..."): exit 3."""
    import errno

    from musilingo.errors import write_fault

    fault = write_fault(tmp_path / "a", RuntimeError(
        "Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
        '"No space left on device" })'))
    assert isinstance(fault, OSError) and fault.errno == errno.ENOSPC
    assert write_fault(tmp_path / "a", RuntimeError("shape mismatch")) is None
