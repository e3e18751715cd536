"""Generation: batching does not change greedy answers, stopping at `###`, prompts, settings."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from musilingo.errors import UserError
from musilingo.features import PooledSegment, join_segments
from musilingo.infer.config import GenerationConfig
from musilingo.infer.generation import (audio_tokens, chat_example, generate,
                                        prompt_example)

QUESTIONS = ["What instrument is playing?", "Tempo?", "Describe the mood of this piece in detail.",
             "Is it in a major or a minor key?", "Who?", "What genre is this music?"]


def _features(model, windows: int, seed: int):
    rng = np.random.default_rng(seed)
    c = model.config
    return (rng.standard_normal((c.num_layers, windows, c.encoder_dim)).astype(np.float32),
            np.full(windows, 65, np.int32))


def test_batched_greedy_equals_one_at_a_time(predictor):
    model = predictor.model
    feats = [_features(model, w, i) for i, w in enumerate([5, 10, 15, 3, 7, 20])]
    prompts = [prompt_example(model, q) for q in QUESTIONS]
    cfg = GenerationConfig(max_new_tokens=8)
    one = [generate(model, [p], [f], cfg, batch_size=1)[0].answer for p, f in zip(prompts, feats)]
    batched = generate(model, prompts, feats, cfg, batch_size=4)
    assert [b.answer for b in batched] == one
    assert all(b.new_tokens == 8 for b in batched)   # a random LM never writes ### by itself
    # Different audio, same question: the answer depends on what the model hears.
    assert len({generate(model, [prompts[0]], [f], cfg)[0].answer for f in feats}) > 1


def test_generation_stops_at_the_end_symbol(predictor):
    """An LM head that always prefers `###` makes every answer stop after one token."""
    model = predictor.model
    llm, tok = model.llm, model.tokenizer
    stop_id = tok("###", add_special_tokens=False)["input_ids"]
    assert len(stop_id) == 1
    head = torch.nn.Linear(llm.config.hidden_size, llm.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-10.0)
        head.bias[stop_id[0]] = 10.0
    saved = llm.lm_head
    llm.lm_head = head
    try:
        outs = generate(model, [prompt_example(model, q) for q in QUESTIONS[:3]],
                        [_features(model, 5, i) for i in range(3)],
                        GenerationConfig(max_new_tokens=50), batch_size=3)
    finally:
        llm.lm_head = saved
    assert [o.new_tokens for o in outs] == [1, 1, 1]
    assert [o.text for o in outs] == ["###"] * 3 and [o.answer for o in outs] == [""] * 3


def test_sampling_is_seeded_and_beam_runs(predictor):
    model = predictor.model
    prompts = [prompt_example(model, q) for q in QUESTIONS[:2]]
    feats = [_features(model, 6, i) for i in range(2)]
    hot = GenerationConfig(decoding="sampling", temperature=2.0, top_p=1.0, max_new_tokens=6)
    a = [o.answer for o in generate(model, prompts, feats, hot)]
    torch.manual_seed(123)  # the caller's RNG must not matter, and must not be consumed
    state = torch.get_rng_state()
    b = [o.answer for o in generate(model, prompts, feats, hot)]
    assert a == b and torch.equal(state, torch.get_rng_state())
    other = GenerationConfig(decoding="sampling", temperature=2.0, top_p=1.0, max_new_tokens=6,
                             seed=1)
    assert [o.answer for o in generate(model, prompts, feats, other)] != a
    beam = generate(model, prompts, feats, GenerationConfig(decoding="beam", num_beams=2,
                                                            max_new_tokens=4))
    assert all(isinstance(o.answer, str) for o in beam)


def test_generation_settings_and_reference_preset():
    assert GenerationConfig().generate_kwargs()["do_sample"] is False
    ref = GenerationConfig(decoding="greedy", sampling="reference", max_new_tokens=20,
                           seed=3).validate()
    assert (ref.decoding, ref.top_p, ref.temperature, ref.max_new_tokens, ref.seed) == \
        ("sampling", 0.5, 0.1, 300, 3)
    for bad in (dict(decoding="nucleus"), dict(max_new_tokens=0),
                dict(decoding="beam", num_beams=1), dict(decoding="sampling", top_p=0.0)):
        with pytest.raises(UserError):
            GenerationConfig(**bad).validate()


def test_chat_prompt_continues_the_template(predictor):
    model = predictor.model
    ex = chat_example(model, [("What plays?", "A piano."), ("And the tempo?", None)])
    tok = model.tokenizer
    assert ex.before[0] == tok.bos_token_id
    assert tok.decode(ex.before[1:]) == "###Human: <Audio>"
    # The final space is left to the answer's first token, as in training (models/prompts.py).
    assert tok.decode(ex.after) == ("</Audio> What plays? ###Assistant: A piano.###Human: And "
                                    "the tempo? ###Assistant:")
    # The first turn alone is exactly the training prompt.
    first = chat_example(model, [("What plays?", None)])
    single = prompt_example(model, "What plays?")
    assert (first.before, first.after) == (single.before, single.after)


def test_joined_segments_keep_segment_boundaries():
    segs = [PooledSegment(np.ones((2, w, 3), np.float32) * i, np.full(w, 65, np.int32), 30.0 * i,
                          30.0) for i, w in enumerate([7, 3, 11])]
    f, c, used = join_segments(segs, factor=5)
    # Each segment padded to whole tokens of 5 windows: 7->10, 3->5, 11->15.
    assert f.shape == (2, 30, 3) and used == 3
    assert c.tolist()[:10] == [65] * 7 + [0] * 3
    assert audio_tokens(c, 5) == 2 + 1 + 3
    # A budget cuts at a token boundary, mid-segment if need be (training's rule too).
    f, c, used = join_segments(segs, factor=5, max_audio_tokens=4)
    assert used == 3 and audio_tokens(c, 5) == 4 and f[:, 15:].min() == 2
    _, c, used = join_segments(segs, factor=5, max_audio_tokens=1)
    assert used == 1 and audio_tokens(c, 5) == 1


def test_prompt_longer_than_the_context_is_refused(predictor, monkeypatch):
    model = predictor.model
    monkeypatch.setattr(model.llm.config, "max_position_embeddings", 30)
    with pytest.raises(UserError, match="more than the LLM's context of 30"):
        generate(model, [prompt_example(model, "What plays?")], [_features(model, 50, 0)],
                 GenerationConfig(max_new_tokens=10))
