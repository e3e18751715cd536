"""Batched text generation from audio features: decoding settings, prompts, and the loop.

    cfg = GenerationConfig()                         # greedy, 300 new tokens, seed 0
    cfg = GenerationConfig.reference()               # the reference code's sampling
    outs = generate(model, [prompt_example(model, "What instrument is playing?")],
                    [(features, counts)], cfg, batch_size=8)
    outs[0].answer, outs[0].new_tokens

The one generation path of the package (caption, ask, chat, serve, score, the demo): multi-turn
prompts (chat), the number of generated tokens (throughput, truncation checks), a context-length
check before a long track is sent whole, and an RNG that does not disturb the caller's. The
layout is the model's own:
`make_batch` + `MusiLingo.embed(left_pad=True)`, the same splice training uses, so a prompt is
laid out token for token as in training.

Decoding (docs/REFERENCE.md section 2): the reference evaluation SAMPLES (top_p 0.5,
temperature 0.1, 300 new tokens) without a seed, so its numbers cannot be reproduced. Our default is greedy
(deterministic; batched answers equal one-at-a-time answers, see tests/infer); `beam` and
`sampling` (seeded per batch) are available. Generation stops when the text ends with the
template's end symbol (`###` for the instruct template), and the answer is the text before it.
Batches are left-padded, so every row's last prompt token sits at the same position.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError
from ..models.musilingo import make_batch
from ..models.prompts import (AUDIO_MARKER, PromptTemplate, TokenizedExample,
                              answer_from_generation, chat_messages, render, tokenize_example,
                              tokenize_prompt)
from .config import GenerationConfig

# Later turns of a chat continue the instruct template's "###Human: ... ###Assistant: " pattern:
# the previous answer ends with the end symbol "###", then the next human turn follows.
CHAT_TURN = "Human: {question} ###Assistant: "


@dataclass
class Generation:
    """One generated answer: the text before the end symbol, the raw text, tokens generated."""

    answer: str
    text: str
    new_tokens: int


# ------------------------------------------------------------------------------- prompts
def prompt_example(model, question: str | None) -> TokenizedExample:
    """The single-turn prompt the model was trained with (no target)."""
    if model.template.has_question and not question:
        raise UserError(f"the adapter's {model.template.name!r} template needs a question")
    return tokenize_example(model.tokenizer, model.template,
                            question=question if model.template.has_question else None)


def chat_example(model, turns: list[tuple[str, str | None]]) -> TokenizedExample:
    """A multi-turn prompt: turns = [(question, answer), ..., (question, None)].

    The first turn is exactly the training template (audio, first question); each answered turn
    is followed by its end symbol and the next `Human:` turn, as in the reference conversation
    format ("###Human: ... ###Assistant: answer###Human: ... ###Assistant: ")."""
    template: PromptTemplate = model.template
    if not template.has_question:
        raise UserError(f"the adapter's {template.name!r} template has no questions (a stage-1 "
                        "captioning adapter): use `musilingo caption`, not chat")
    if not turns or turns[-1][1] is not None:
        raise ValueError("the last turn must be an unanswered question")
    if template.is_chat:  # the LLM's own chat template renders the conversation
        return tokenize_prompt(model.tokenizer,
                               *_chat_turns(model.tokenizer, turns, template.system),
                               bos=template.bos, chat=True)[0]
    before, after = render(template, turns[0][0])
    for (_, answer), (question, _) in zip(turns[:-1], turns[1:]):
        after += answer + template.end + CHAT_TURN.format(question=question)
    return tokenize_prompt(model.tokenizer, before, after)[0]  # the training layout exactly


def _chat_turns(tokenizer, turns: list[tuple[str, str | None]],
                system: str | None = None) -> tuple[str, str]:
    """The text before and after the audio of a conversation in the tokenizer's chat template,
    with the run's system turn; the audio opens the first user turn, as in training
    (models/prompts.py, chat_template)."""
    text = tokenizer.apply_chat_template(chat_messages(turns, system), tokenize=False,
                                         add_generation_prompt=True)
    before, after = text.split(AUDIO_MARKER)
    return before, after


def stop_token_ids(tokenizer, end: str) -> list[int] | None:
    """The end symbol as one token id (a chat template's end-of-turn token), for generate's
    eos_token_id; None when it is ordinary text (`###`), which stop_strings handles."""
    ids = tokenizer(end, add_special_tokens=False)["input_ids"]
    special = set(getattr(tokenizer, "all_special_tokens", ())) | set(tokenizer.get_added_vocab())
    return list(ids) if len(ids) == 1 and end in special else None


# --------------------------------------------------------------------------- audio tokens
def audio_tokens(counts: np.ndarray, factor: int) -> int:
    """Adapter tokens a (counts [W]) feature array gives: non-empty groups of `factor` windows."""
    c = np.asarray(counts)
    pad = (-len(c)) % factor
    groups = np.pad(c, (0, pad)).reshape(-1, factor).sum(1)
    return int(np.count_nonzero(groups))


def context_length(model) -> int | None:
    """The LLM's maximum sequence length, when its config states one."""
    cfg = model.llm.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def audio_budget(model, prompt: TokenizedExample, config: GenerationConfig) -> int | None:
    """How many audio tokens fit beside this prompt and the answer (None: no known limit)."""
    limit = context_length(model)
    if limit is None:
        return None
    return limit - len(prompt.text_ids) - config.max_new_tokens


# ---------------------------------------------------------------------------------- loop
@torch.no_grad()
def generate(model, prompts: list[TokenizedExample], features: list[tuple[np.ndarray, np.ndarray]],
             config: GenerationConfig | None = None, *, batch_size: int = 8,
             on_batch=None) -> list[Generation]:
    """Answer every (prompt, features) pair, `batch_size` at a time, in input order.

    Rows are grouped by sequence length before batching (less padding; greedy answers do not
    depend on the batch, see tests), and `on_batch(indices, generations)` is called after each
    batch so callers can write results as they come."""
    config = config or GenerationConfig()
    if len(prompts) != len(features):
        raise ValueError("one feature array per prompt")
    if batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    tok = model.tokenizer
    factor = model.adapter.factor
    lengths = [len(p.text_ids) + audio_tokens(c, factor) for p, (_, c) in zip(prompts, features)]
    limit = context_length(model)
    for i, n in enumerate(lengths):
        if limit is not None and n + config.max_new_tokens > limit:
            raise UserError(f"prompt {i} needs {n} tokens + {config.max_new_tokens} new ones, "
                            f"more than the LLM's context of {limit}: use shorter audio or "
                            "fewer --max-new-tokens")
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    out: list[Generation | None] = [None] * len(prompts)
    end = model.template.end
    eos = stop_token_ids(tok, end) if model.template.is_chat else None
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = make_batch([prompts[i] for i in idx], [features[i] for i in idx],
                           pad_id=tok.pad_token_id)
        embeds, attn, _ = model.embed(batch, left_pad=True)
        # A private RNG stream: sampling is reproducible per batch and the caller's RNG is
        # left as it was.
        devices = [embeds.device] if embeds.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(config.seed)
            stop = {"eos_token_id": eos} if eos else {}
            ids = model.llm.generate(inputs_embeds=embeds, attention_mask=attn,
                                     pad_token_id=tok.pad_token_id, stop_strings=[end],
                                     tokenizer=tok, **stop, **config.generate_kwargs())
        texts = tok.batch_decode(ids, skip_special_tokens=True)
        done = []
        for row, (i, text) in enumerate(zip(idx, texts)):
            n_new = int((ids[row] != tok.pad_token_id).sum())
            out[i] = Generation(answer_from_generation(text, model.template), text, n_new)
            done.append(out[i])
        if on_batch is not None:
            on_batch(idx, done)
    return out  # type: ignore[return-value]
