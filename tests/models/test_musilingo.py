"""MusiLingo model: exact adapter pooling, correct splicing, loss, generation, save/load."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from musilingo.features.pooling import pool_to_tokens, window_pool
from musilingo.errors import UserError
from musilingo.models.musilingo import make_batch, splice
from musilingo.models.prompts import IGNORE, get_template, tokenize_example
from tests.helpers.models import build_model, adapter

L, D = 3, 16


@pytest.fixture(scope="module")
def model():
    return build_model("tiny-llama", encoder_dim=D, num_layers=L, stride=65, t=325,
                       template=get_template("instruct"))


def _features(frames: int, seed: int, stride: int = 65):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(L, frames, D, generator=g)
    means, counts = window_pool(hidden, stride)
    return hidden, (means.numpy(), counts.numpy())


def test_adapter_repool_is_exact_and_learned_starts_at_mean():
    hidden, (means, counts) = _features(1000, 0)
    ref = pool_to_tokens(hidden, 325)                      # on the fly, at t directly
    for agg in ("mean", "learned"):
        a = adapter(D, 8, L, stride=65, t=325, aggregation=agg)
        x, c = a.pooled(torch.tensor(means)[None], torch.tensor(counts)[None])
        torch.testing.assert_close(x[0], ref, rtol=1e-5, atol=1e-6)
        assert c[0].tolist() == [325, 325, 325, 25]
    with pytest.raises(UserError, match="not a multiple"):
        adapter(D, 8, L, stride=100, t=325)
    a = adapter(D, 8, L, stride=65)
    with pytest.raises(UserError, match="expects features 16 wide .*, but features gives 32"):
        a.pooled(torch.zeros(1, L, 2, 32), torch.ones(1, 2, dtype=torch.int32))


def test_resampler_starts_as_the_exact_repooling_and_learns_where_to_listen():
    """At initialisation the resampler's attention is the count-weighted mean (the linear
    adapter's output, padding window included); training its query and keys moves weight onto
    the sub-window that carries the signal, which no fixed pooling can do."""
    hidden, (means, counts) = _features(1000, 0)
    x_in, c_in = torch.tensor(means)[None], torch.tensor(counts)[None]
    linear = adapter(D, 8, L, stride=65, t=325)
    resampler = adapter(D, 8, L, stride=65, t=325, kind="resampler")
    resampler.proj.load_state_dict(linear.proj.state_dict())
    x, c = resampler.pooled(x_in, c_in)
    torch.testing.assert_close(x[0], pool_to_tokens(hidden, 325), rtol=1e-5, atol=1e-5)
    assert c[0].tolist() == [325, 325, 325, 25]
    torch.testing.assert_close(resampler(x_in, c_in)[0], linear(x_in, c_in)[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match="stride 325 = t 325 leaves one"):
        adapter(D, 8, L, stride=325, t=325, kind="resampler")

    # The target is the second sub-window of each window, whose first feature dimension marks it.
    torch.manual_seed(0)
    feats = torch.randn(64, L, 10, D)
    feats[:, :, 1::5, 0] += 4.0
    target = feats.mean(1)[:, 1::5]                       # [B, G, D]
    ones = torch.full((64, 10), 65, dtype=torch.int32)
    losses = {}
    for kind in ("linear", "resampler"):
        torch.manual_seed(1)
        a = adapter(D, D, L, stride=65, t=325, kind=kind)
        opt = torch.optim.Adam(a.parameters(), lr=3e-2)
        for _ in range(300):
            loss = ((a(feats, ones)[0] - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses[kind] = loss.item()
    assert losses["resampler"] < 0.1 * losses["linear"], losses


def test_splice_positions_right_and_left():
    text = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    audio = torch.tensor([[10, 11, 12], [13, 0, 14]])
    mask = torch.tensor([[True, True, False], [True, False, True]])
    out, attn = splice(text, torch.tensor([4, 2]), torch.tensor([1, 2]), audio, mask, fill=-9)
    assert out.tolist() == [[1, 10, 11, 2, 3, 4], [5, 6, 13, 14, -9, -9]]
    assert attn.tolist() == [[1] * 6, [1, 1, 1, 1, 0, 0]]
    out, attn = splice(text, torch.tensor([4, 2]), torch.tensor([1, 2]), audio, mask, fill=-9,
                       left_pad=True)
    assert out.tolist() == [[1, 10, 11, 2, 3, 4], [-9, -9, 5, 6, 13, 14]]
    assert attn.tolist() == [[1] * 6, [0, 0, 1, 1, 1, 1]]


def test_loss_matches_a_hand_built_sequence(model):
    tok = model.tokenizer
    exs = [tokenize_example(tok, model.template, "What plays?", "A piano."),
           tokenize_example(tok, model.template, "Tempo?", "Fast, around 140 beats per minute.")]
    feats = [_features(1000, 1)[1], _features(400, 2)[1]]   # 4 and 2 audio tokens
    batch = make_batch(exs, feats, pad_id=tok.pad_token_id)
    loss = model(batch)
    emb = model.llm.get_input_embeddings()
    total, count = 0.0, 0
    for ex, (f, c) in zip(exs, feats):
        x, _ = model.adapter.pooled(torch.tensor(f)[None], torch.tensor(c)[None])
        audio = model.adapter.proj(x[0])
        seq = torch.cat([emb(torch.tensor(ex.before)), audio, emb(torch.tensor(ex.after + ex.target))])
        labels = [IGNORE] * (len(ex.before) + audio.shape[0] + len(ex.after)) + ex.target
        out = model.llm(inputs_embeds=seq[None], labels=torch.tensor([labels]))
        n = len(ex.target)
        total += out.loss.item() * n
        count += n
    assert loss.item() == pytest.approx(total / count, rel=1e-5)
    # The trainer's normaliser replaces the batch's own token count.
    batch["loss_norm"] = 2 * count
    assert model(batch).item() == pytest.approx(total / count / 2, rel=1e-5)


def test_only_the_adapter_gets_gradients(model):
    tok = model.tokenizer
    batch = make_batch([tokenize_example(tok, model.template, "Q?", "A.")], [_features(500, 3)[1]],
                       pad_id=tok.pad_token_id)
    model.zero_grad()
    model(batch).backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"adapter.proj.weight", "adapter.proj.bias"}
    assert model.adapter.proj.weight.grad.abs().sum() > 0


def test_save_and_rebuild(model, tmp_path):
    from musilingo.runs.adapter_file import load_model, save_adapter

    torch.nn.init.normal_(model.adapter.proj.weight)
    save_adapter(tmp_path, model.config, model.adapter.state_dict())
    again = load_model(tmp_path)
    assert again.config == model.config and again.config.llm_dim == 64
    tok = model.tokenizer
    batch = make_batch([tokenize_example(tok, model.template, "Q?", "A.")], [_features(500, 7)[1]],
                       pad_id=tok.pad_token_id)
    assert again(batch).item() == pytest.approx(model(batch).item(), rel=1e-6)
    with pytest.raises(UserError, match="not an adapter folder"):
        load_model(tmp_path / "nothing")


def test_join_segments_for_long_tracks():
    from musilingo.features import PooledSegment, join_segments

    pulled = []

    def segments():
        for i in range(5):
            pulled.append(i)
            yield PooledSegment(np.full((L, 3, D), i, np.float32), np.array([65, 65, 20], np.int32),
                                start=i * 3.0, seconds=3.0)

    f, c, used = join_segments(segments(), factor=2, max_audio_tokens=3)
    # Segment 0: 3 windows + 1 padding window = 2 tokens; segment 1: its first token only.
    assert c.tolist() == [65, 65, 20, 0, 65, 65] and pulled == [0, 1] and used == 2
    assert f[:, 4:].min() == 1 and not f[:, 3].any()


def test_an_empty_musilingo_home_means_the_default(monkeypatch, tmp_path):
    """`MUSILINGO_HOME=$UNSET musilingo ...` must not build models into the working directory."""
    from pathlib import Path

    from musilingo.models.home import models_home as home

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MUSILINGO_HOME", "")
    assert home() == Path(tmp_path) / ".cache" / "musilingo"
    monkeypatch.setenv("MUSILINGO_HOME", str(tmp_path / "h"))
    assert home() == tmp_path / "h"
