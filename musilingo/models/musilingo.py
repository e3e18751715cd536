"""The MusiLingo model: pooled encoder features -> adapter -> spliced into a frozen causal LM.

    model = MusiLingo.build("smollm2", encoder_dim=768, num_layers=13, stride=325, t=325,
                            template=get_template("instruct"))
    loss = model(batch)                                   # batch from make_batch(...)

Saving and loading a trained adapter (the run folder) is `musilingo.runs.adapter_file`'s.

`AudioAdapter` is the only trainable part: layer aggregation (the paper's plain mean of all L+1
hidden states, or learned softmax weights initialised to that mean), re-pooling of the cache's
windows of `stride` frames into windows of `t` frames (exact, count-weighted), an optional fixed
per-dimension standardisation, and one `Linear(encoder_dim, llm_dim)` (the paper) or a two-layer
GELU MLP (`kind="mlp"`). Mean over layers, over windows and the linear map commute, which is why
a pooled cache is exact. `kind="resampler"` replaces the fixed re-pooling by a learned one: in
each t-window a query attends over the cache's finer sub-windows (window-level, as SALMONN's
Q-Former attends within each window), one audio token per window as before.

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

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..features.pooling import repool, window_factor
from ..errors import UserError
from .prompts import IGNORE, PromptTemplate, TokenizedExample



class AudioAdapter(nn.Module):
    """[B, L+1, W, D] window means at `stride` + counts [B, W] -> [B, G, llm_dim] tokens + mask.

    `kind`: linear (the paper: one Linear), mlp (Linear, GELU, Linear, as LLaVA-1.5's projector
    and OpenMU use; its first layer is `hidden`) or resampler (`attend_windows`, then the Linear).
    The last Linear is always `proj`, so a linear adapter's tensors keep the reference code's
    names."""

    KINDS = ("linear", "mlp", "resampler")
    RESAMPLER_DIM = 64  # width of the resampler's query and keys

    def __init__(self, encoder_dim: int, llm_dim: int, num_layers: int, *, stride: int,
                 t: int = 325, aggregation: str = "mean", kind: str = "linear"):
        super().__init__()
        factor = window_factor(t, stride)
        if aggregation not in ("mean", "learned"):
            raise UserError(f"layer aggregation {aggregation!r}: use mean or learned")
        if kind not in self.KINDS:
            raise UserError(f"adapter={kind!r}: use one of {', '.join(self.KINDS)}")
        if kind == "resampler" and factor == 1:
            raise UserError(f"adapter=resampler attends over the cache's sub-windows of each "
                            f"t-window, but stride {stride} = t {t} leaves one: use a cache "
                            "extracted with a smaller stride (e.g. t/5), or adapter=linear")
        self.encoder_dim, self.llm_dim, self.num_layers = encoder_dim, llm_dim, num_layers
        self.stride, self.t, self.factor, self.aggregation = stride, t, factor, aggregation
        self.kind = kind
        # Zeros -> softmax gives equal weights, i.e. exactly the paper's mean at initialisation.
        self.layer_logits = nn.Parameter(torch.zeros(num_layers)) if aggregation == "learned" else None
        # Fixed standardisation of the pooled features (identity unless fitted): features of a
        # random or real encoder have per-dimension scales far from 1 (docs/REFERENCE.md section 6).
        self.register_buffer("feature_mean", torch.zeros(encoder_dim))
        self.register_buffer("feature_std", torch.ones(encoder_dim))
        self.hidden = nn.Linear(encoder_dim, llm_dim) if kind == "mlp" else None
        self.query = self.keys = None
        if kind == "resampler":
            # Zero keys: every score equal, so at initialisation the attention is exactly the
            # count-weighted mean, i.e. the linear adapter's re-pooling (see attend_windows).
            self.query = nn.Parameter(torch.randn(self.RESAMPLER_DIM) / math.sqrt(self.RESAMPLER_DIM))
            self.keys = nn.Linear(encoder_dim, self.RESAMPLER_DIM, bias=False)
            nn.init.zeros_(self.keys.weight)
        self.proj = nn.Linear(llm_dim if kind == "mlp" else encoder_dim, llm_dim)

    def check_features(self, num_layers: int, dim: int, where: str = "features") -> None:
        if dim != self.encoder_dim:
            raise UserError(f"{where} are {dim} wide but the adapter expects {self.encoder_dim} "
                            "(encoder width): use a cache made with the adapter's encoder")
        if num_layers != self.num_layers:
            raise UserError(f"{where} hold {num_layers} hidden states but the adapter expects "
                            f"{self.num_layers}: use a cache made with the adapter's encoder")

    def pooled(self, features: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer aggregation and re-pooling: [B, G, D] float32 adapter inputs and counts [B, G]."""
        self.check_features(features.shape[1], features.shape[-1])
        x = features.float()
        if self.layer_logits is None:
            x = x.mean(dim=1, keepdim=True)
        else:
            w = torch.softmax(self.layer_logits.float(), dim=0)
            x = torch.einsum("l,blwd->bwd", w, x).unsqueeze(1)
        if self.kind == "resampler":
            x = (x[:, 0] - self.feature_mean.float()) / self.feature_std.float()
            return self.attend_windows(x, counts)
        x, c = repool(x, counts, self.factor)
        x = (x[:, 0] - self.feature_mean.float()) / self.feature_std.float()
        return x, c

    def attend_windows(self, x: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, W, D] sub-windows -> [B, G, D]: each group of `factor` sub-windows weighted by the
        softmax of query . keys(sub-window) + log(count). The log count makes equal scores give
        the count-weighted mean, so the learned part only moves weight between sub-windows;
        empty sub-windows (count 0) get none, and an empty group comes out as zeros."""
        b, w, d = x.shape
        groups = math.ceil(w / self.factor)
        pad = groups * self.factor - w
        x = F.pad(x, (0, 0, 0, pad)).unflatten(1, (groups, self.factor))          # [B, G, k, D]
        c = F.pad(counts, (0, pad)).unflatten(1, (groups, self.factor)).float()  # [B, G, k]
        keys = self.keys(x.to(self.keys.weight.dtype)).float()
        scores = keys @ self.query.float() / math.sqrt(self.RESAMPLER_DIM) + c.clamp(min=1).log()
        weights = torch.softmax(scores.masked_fill(c == 0, float("-inf")), dim=-1)
        total = c.sum(-1)
        pooled = (weights.nan_to_num(0.0)[..., None] * x).sum(-2)
        return pooled.masked_fill(total[..., None] == 0, 0.0), total.to(torch.int32)

    def forward(self, features: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, c = self.pooled(features, counts)
        x = x.to(self.proj.weight.dtype)
        if self.hidden is not None:
            x = F.gelu(self.hidden(x))
        return self.proj(x), c > 0


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
    """Frozen causal LM + trainable AudioAdapter, with the prompt template they were trained with."""

    def __init__(self, llm, tokenizer, adapter: AudioAdapter, template: PromptTemplate, *,
                 llm_name: str, encoder: dict | None = None):
        super().__init__()
        self.llm = llm.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.adapter = adapter
        self.template = template
        self.llm_name = llm_name
        self.encoder_meta = dict(encoder or {})
        self.normalized = False

    @classmethod
    def build(cls, llm: str, *, encoder_dim: int, num_layers: int, stride: int, t: int = 325,
              aggregation: str = "mean", template: PromptTemplate, encoder: dict | None = None,
              dtype="fp32", device="cpu", trust_remote_code: bool = False, seed: int = 0,
              kind: str = "linear"):
        from .llm import load_llm

        model, tok = load_llm(llm, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
        torch.manual_seed(seed)  # the adapter's initialisation is part of a reproducible run
        adapter = AudioAdapter(encoder_dim, model.config.hidden_size, num_layers, stride=stride,
                               t=t, aggregation=aggregation, kind=kind).to(device)
        return cls(model, tok, adapter, template, llm_name=llm, encoder=encoder)

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
