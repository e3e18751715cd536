"""`tiny-lm`: a tiny Llama that already speaks the demo's language, for `musilingo demo --quick`.

MusiLingo's LLM is frozen and pre-trained: it knows how to answer a question from what is in its
context, and the adapter only has to put the music there. A tiny LLM with RANDOM weights cannot
play that part (measured: with SmolLM2's 49k vocabulary a random 2-layer Llama stayed at loss
ln(49152) = 10.8 over 300 adapter steps, 10.1 with a 10x larger init; its output distribution
is flat whatever the input), and real SmolLM2-135M needs hundreds of ~1 s steps, too slow for CI.

So the quick demo's LLM is built the way real ones are, in miniature, and then frozen: a 2-layer
Llama with a word-level vocabulary of the synthetic set's text, pre-trained for a few seconds on
TEXT ONLY: the stage-2 template with a description of the clip in the audio slot (the sum of the
embeddings of its attribute words, one to three copies, as audio tokens are vectors, not words)
and the question, answer or caption after it, or a four-option question in MuChoMusic's layout
and the right option's text. It learns to read an attribute from its context;
it has never seen audio. The adapter must then map encoder features to what the LLM reads:
exactly MusiLingo's job. Deterministic by seed; built once under $MUSILINGO_HOME/llms/.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

TINY_LM_VERSION = 4  # 4: four-option questions in the corpus; 3: 1200 steps (2 had 400)
SIZES = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=4, max_position_embeddings=512, tie_word_embeddings=True)
SPECIALS = ["<unk>", "<pad>", "<s>", "</s>"]
_WORDS = re.compile(r"\w+|[^\w\s]+")


def _corpus(seed: int, clips: int):
    """(value words, question, target) triples from the synthetic set's own text generators."""
    from ..data.items import CAPTION_QUESTION, mcq_prompt, mcq_reply
    from ..synth.generate import plan_clips
    from ..synth.language import ATTRIBUTES, caption, mcq_questions, question_answers

    rng = np.random.default_rng(seed)
    rows = []
    for _, plan in plan_clips("train", clips, seed + 7919):
        values = [getattr(plan, a) for a in ATTRIBUTES]
        for _, _, question, answer in question_answers(plan, rng):
            rows.append((values, question, answer))
        rows.append((values, CAPTION_QUESTION, caption(plan, rng)))
        for _, question, right, distractors in mcq_questions(plan, rng):
            order = rng.permutation(4)
            options = [[right, *distractors][i] for i in order]
            rows.append((values, mcq_prompt(question, options),
                         mcq_reply(options, int(np.argmax(order == 0)))))
    return rows


def _pieces(text: str) -> list[str]:
    """Word pieces as the tokenizer sees them: `###` alone, other text split at spaces."""
    from tokenizers import pre_tokenizers

    meta = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    out = []
    for i, part in enumerate(text.split(END)):
        if i:
            out.append(END)
        if part:
            out += [p for p, _ in meta.pre_tokenize_str(part)]
    return out


END = "###"


def _tokenizer(rows):
    """Word-level tokenizer over the synthetic set's text; `###` is one token (the end symbol)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from ..models.prompts import AUDIO_MARKER, TEMPLATES

    texts = []
    for t in TEMPLATES.values():
        texts += t.text.replace("{question}", "").split(AUDIO_MARKER) + [t.end]
    for values, question, target in rows:
        texts += [" ".join(values), f"</Audio> {question} ###Assistant: ", target + END,
                  target + "\n"]
    # transformers' stop-string matcher (generation stops at `###`) probes every vocabulary
    # with the word "abcdef" and fails on a word-level vocabulary that cannot spell it.
    texts.append("abcdef")
    words = sorted({w for text in texts for w in _pieces(text)} - {END})
    vocab = {w: i for i, w in enumerate(SPECIALS + [END] + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.add_tokens([AddedToken(END, normalized=False)])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                   bos_token="<s>", eos_token="</s>")


def _examples(tok, rows):
    """(token ids with -1 at the audio slot, labels, description word ids) per row."""
    from ..models.prompts import get_template, tokenize_example

    template = get_template("instruct")
    out = []
    for values, question, target in rows:
        ex = tokenize_example(tok, template, question=question, target=target)
        slot = [i for v in values for i in tok(v, add_special_tokens=False)["input_ids"]]
        out.append((ex, slot))
    return out


def _batch(model, examples, rng):
    """inputs_embeds with 1-3 copies of the clip's description vector in the audio slot.

    One embedding lookup per batch (a per-example loop of small lookups made pre-training
    20x slower): the description is the sum of its word embeddings, scattered into the slot."""
    emb = model.get_input_embeddings()
    rows, labels, slots, spans = [], [], [], []
    for ex, slot in examples:
        n = int(rng.integers(1, 4))
        rows.append(ex.before + [0] * n + ex.after + ex.target)
        labels.append([-100] * (len(ex.before) + n + len(ex.after)) + ex.target)
        slots.append(slot)
        spans.append((len(ex.before), n))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), 0, dtype=torch.long)
    y = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    in_slot = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, (r, l, (start, n)) in enumerate(zip(rows, labels, spans)):
        ids[i, :len(r)], y[i, :len(l)], mask[i, :len(r)] = torch.tensor(r), torch.tensor(l), 1
        in_slot[i, start:start + n] = True
    width_slot = max(len(s) for s in slots)
    slot_ids = torch.zeros(len(slots), width_slot, dtype=torch.long)
    slot_keep = torch.zeros(len(slots), width_slot, 1)
    for i, sl in enumerate(slots):
        slot_ids[i, :len(sl)], slot_keep[i, :len(sl)] = torch.tensor(sl), 1.0
    desc = (emb(slot_ids) * slot_keep).sum(1)                       # [B, H]
    x = emb(ids)
    x = torch.where(in_slot[..., None], desc[:, None, :].expand_as(x), x)
    return x, y, mask


def build_tiny_lm(folder: Path, *, seed: int = 0, steps: int = 1200, batch: int = 32,
                  lr: float = 3e-3, log=None, progress: bool = False) -> dict:
    """Pre-train and save the tiny LM; returns (and keeps in pretraining.json) its held-out
    answer-token accuracy and four-option whole-reply accuracy.

    Cost (2026-12-02, 2-core Xeon): ~3 s of corpus and tokenizer, then ~125 ms per step (the
    four-option prompts are the longest rows), so ~155 s for the 1200 steps. With 400 steps
    (held-out answer-token accuracy lower) the LLM never learned to read loudness from its slot: the demos answered "Loud." for every clip
    whatever the encoder; 1200 steps fixed that, 2500 added little (benchmarks/README.md, Demo)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ..models.home import save_model

    rows = _corpus(seed, clips=600)
    tok = _tokenizer(rows)
    examples = _examples(tok, rows)
    held = 240  # the first 20 clips' rows (12 each), never trained on
    held_out, train, held_out_rows = examples[:held], examples[held:], rows[:held]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    config = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **SIZES)
    model = LlamaForCausalLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="tiny-lm pre-training", unit="step", dynamic_ncols=True)
    for step in range(steps):
        picks = rng.choice(len(train), size=batch, replace=False)
        x, y, mask = _batch(model, [train[i] for i in picks], rng)
        logits = model(inputs_embeds=x, attention_mask=mask).logits
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), y[:, 1:].flatten(), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log and step % 100 == 0:
            log(f"tiny-lm: step {step}, loss {loss.item():.3f}")
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    if bar is not None:
        bar.close()
    model.eval()
    with torch.no_grad():
        x, y, mask = _batch(model, held_out, rng)
        pred = model(inputs_embeds=x, attention_mask=mask).logits[:, :-1].argmax(-1)
        keep = y[:, 1:] != -100
        accuracy = float((pred[keep] == y[:, 1:][keep]).float().mean())
        # A multiple-choice reply counts when every one of its tokens is right.
        whole = ((pred == y[:, 1:]) | ~keep).all(1)
        mcq = float(whole[[i for i, (_, question, _) in enumerate(held_out_rows)
                           if question.startswith("Question:")]].float().mean())
    save_model(model, folder)
    tok.save_pretrained(folder)
    result = {"steps": steps, "held_out_token_accuracy": accuracy,
              "held_out_mcq_reply_accuracy": mcq, "final_loss": float(loss.detach())}
    # What the pre-training reached, kept with the model (teacher-forced, description in the slot).
    (Path(folder) / "pretraining.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def tiny_lm_folder(seed: int = 0, *, progress: bool = True, log=None) -> Path:
    """The pre-trained tiny LM's folder, built on first use (a tqdm bar, or with progress=False
    a `log` line every 100 steps)."""
    from ..models.home import build_folder, models_home

    return build_folder(models_home() / "llms" / f"tiny-lm-v{TINY_LM_VERSION}-s{seed}",
                        lambda tmp: build_tiny_lm(tmp, seed=seed, progress=progress,
                                                  log=None if progress else log),
                        what="tiny-lm",
                        note="pre-training a 2-layer Llama on the synthetic set's text (once, "
                             "~2.5 min on 2 cores)")
