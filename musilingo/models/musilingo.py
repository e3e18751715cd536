"""The MusiLingo model: pooled encoder features -> adapter -> spliced into a frozen causal LM.

    model = MusiLingo.build(AdapterConfig(llm="smollm2", encoder_dim=768, num_layers=13,
                                          stride=325, t=325, template=get_template("instruct")))
    loss = model(batch)                                   # batch from make_batch(...)

`model.config` is the `AdapterConfig` that built it (models/adapter_config.py), with the LLM's
width filled in; saving and loading a trained adapter (the run folder) is
`musilingo.runs.adapter_file`'s. The adapter (models/adapters.py) is the only trainable part,
with the LLM's LoRA matrices when the config asks for them (models/lora.py).

The audio tokens of each example are spliced into `inputs_embeds` where the template's
`<AudioHere>` stands. Examples carry different numbers of audio tokens (clip lengths, padding
windows of count 0), so splicing is an index computation per batch, done inside `forward`: under
ZeRO-3 the LLM's embedding weight only exists gathered inside the engine's forward. The loss is
computed on target positions only (logits for the whole sequence times a 32k-50k vocabulary
would dominate memory), summed, and divided by `batch["loss_norm"]` when the trainer gives one
(the global target-token count of the optimizer step, so that several ranks and accumulation
steps give exactly the gradient of one big batch), else by the batch's own target count.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .adapter_config import AdapterConfig
from .adapters import AudioAdapter, build_adapter
from .prompts import IGNORE, TokenizedExample


def make_batch(examples: list[TokenizedExample], features: list, *, pad_id: int) -> dict:
    """Collate tokenised examples and per-example `(features [L, W, D], counts [W])` into tensors.

    Windows are padded to the longest example with count 0 (no weight); text is right-padded.
    """
    if len(examples) != len(features):
        raise ValueError("one feature array per example")
    feats = [torch.as_tensor(f, dtype=torch.float32) for f, _ in features]
    cnts = [torch.as_tensor(c, dtype=torch.int32) for _, c in features]
    layers, dim = feats[0].shape[0], feats[0].shape[-1]
    for f in feats:
        if f.shape[0] != layers or f.shape[-1] != dim:
            raise UserError(f"features of one batch disagree in shape ({tuple(f.shape)} vs "
                            f"[{layers}, *, {dim}]): all data sets must come from one encoder")
    w = max(f.shape[1] for f in feats)
    fb = torch.zeros(len(feats), layers, w, dim)
    cb = torch.zeros(len(feats), w, dtype=torch.int32)
    for i, (f, c) in enumerate(zip(feats, cnts)):
        fb[i, :, : f.shape[1]] = f
        cb[i, : c.shape[0]] = c
    lengths = [len(e.text_ids) for e in examples]
    s = max(lengths)
    ids = torch.full((len(examples), s), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), s), IGNORE, dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, : lengths[i]] = torch.tensor(e.text_ids, dtype=torch.long)
        labels[i, : lengths[i]] = torch.tensor(e.text_labels, dtype=torch.long)
    return {"features": fb, "counts": cb, "text_ids": ids, "labels": labels,
            "text_len": torch.tensor(lengths), "audio_at": torch.tensor([len(e.before) for e in examples])}


def splice(text: torch.Tensor, text_len: torch.Tensor, audio_at: torch.Tensor,
           audio: torch.Tensor, audio_mask: torch.Tensor, *, left_pad: bool = False,
           fill=0) -> tuple[torch.Tensor, torch.Tensor]:
    """Insert each example's valid audio tokens into its text at `audio_at`.

    text [B, S, *] (embeddings or labels), audio [B, G, *] -> ([B, S', *], attention mask [B, S']).
    Works for any trailing shape, so embeddings and labels go through the same positions.
    """
    b, s = text.shape[:2]
    dev = text.device
    n_audio = audio_mask.sum(1)
    total = text_len.to(dev) + n_audio
    width = int(total.max())
    offset = (width - total) if left_pad else torch.zeros_like(total)
    j = torch.arange(s, device=dev).expand(b, s)
    at = audio_at.to(dev)[:, None]
    text_pos = j + (j >= at) * n_audio[:, None] + offset[:, None]
    text_ok = j < text_len.to(dev)[:, None]
    # Valid audio tokens keep their order; masked ones (padding windows) are dropped.
    rank = torch.cumsum(audio_mask.long(), 1) - 1
    audio_pos = at + rank + offset[:, None]
    out = torch.full((b, width, *text.shape[2:]), fill, dtype=text.dtype, device=dev)
    rows_t = torch.arange(b, device=dev)[:, None].expand(b, s)
    rows_a = torch.arange(b, device=dev)[:, None].expand_as(audio_mask)
    out = out.index_put((rows_t[text_ok], text_pos[text_ok]), text[text_ok])
    out = out.index_put((rows_a[audio_mask], audio_pos[audio_mask]), audio[audio_mask].to(text.dtype))
    mask = torch.arange(width, device=dev)[None] - offset[:, None]
    mask = (mask >= 0) & (mask < total[:, None])
    return out, mask.long()


class MusiLingo(nn.Module):
    """Frozen causal LM + trainable AudioAdapter, as its `AdapterConfig` describes them."""

    def __init__(self, llm, tokenizer, adapter: AudioAdapter):
        super().__init__()
        self.llm = llm.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.adapter = adapter

    @property
    def config(self) -> AdapterConfig:
        return self.adapter.config

    @property
    def template(self):
        return self.config.template

    @property
    def llm_name(self) -> str:
        return self.config.llm

    @classmethod
    def build(cls, config: AdapterConfig, *, dtype="fp32", device="cpu",
              trust_remote_code: bool = False, seed: int = 0) -> "MusiLingo":
        """The LLM `config.llm`, a freshly initialised adapter (seeded: part of a reproducible
        run) and, when the config names LoRA, fresh LoRA matrices on the LLM."""
        from .llm import load_llm

        config.validate()
        model, tok = load_llm(config.llm, dtype=dtype, device=device,
                              trust_remote_code=trust_remote_code)
        width = int(model.config.hidden_size)
        if config.llm_dim is not None and config.llm_dim != width:
            raise UserError(f"the adapter was made for an LLM {config.llm_dim} wide, but "
                            f"{config.llm!r} is {width} wide: use the LLM it was trained with")
        torch.manual_seed(seed)
        adapter = build_adapter(dataclasses.replace(config, llm_dim=width)).to(device)
        built = cls(model, tok, adapter)
        if config.lora is not None:
            from .lora import add_lora

            add_lora(built, config.lora)
        return built

    def train(self, mode: bool = True):
        super().train(mode)
        self.llm.eval()  # frozen: no dropout, whatever the trainer asks
        return self

    # ----------------------------------------------------------------- training
    def embed(self, batch: dict, *, left_pad: bool = False):
        """(inputs_embeds, attention_mask, labels) with the audio spliced in."""
        dev = self.adapter.proj.weight.device
        emb_layer = self.llm.get_input_embeddings()
        text = emb_layer(batch["text_ids"].to(dev))
        audio, amask = self.adapter(batch["features"].to(dev), batch["counts"].to(dev))
        embeds, attn = splice(text, batch["text_len"], batch["audio_at"], audio.to(text.dtype),
                              amask, left_pad=left_pad)
        labels = None
        if "labels" in batch:
            audio_labels = torch.full(amask.shape, IGNORE, dtype=torch.long, device=dev)
            labels, _ = splice(batch["labels"].to(dev), batch["text_len"], batch["audio_at"],
                               audio_labels, amask, left_pad=left_pad, fill=IGNORE)
        return embeds, attn, labels

    def _target_logits(self, embeds, attn, labels):
        """Logits at the positions that predict a target token, and those targets."""
        tgt = labels[:, 1:]
        keep = tgt != IGNORE
        # With LoRA the LLM is a PeftModel; its LoRA layers sit inside the wrapped model.
        llm = self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm
        plain = getattr(llm.config, "final_logit_softcapping", None) is None \
            and not hasattr(llm, "logit_scale")
        if plain:  # backbone + lm_head on target positions only
            hidden = llm.base_model(inputs_embeds=embeds, attention_mask=attn).last_hidden_state
            logits = llm.get_output_embeddings()(hidden[:, :-1][keep])
        else:  # models that post-process logits: let them
            logits = self.llm(inputs_embeds=embeds, attention_mask=attn).logits[:, :-1][keep]
        return logits.float(), tgt[keep]

    def forward(self, batch: dict) -> torch.Tensor:
        embeds, attn, labels = self.embed(batch)
        logits, targets = self._target_logits(embeds, attn, labels)
        loss_sum = F.cross_entropy(logits, targets, reduction="sum")
        norm = batch.get("loss_norm")
        norm = torch.as_tensor(norm if norm is not None else max(int(targets.numel()), 1),
                               dtype=torch.float32)
        return loss_sum / norm
