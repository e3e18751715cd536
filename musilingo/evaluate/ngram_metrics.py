"""The n-gram metrics (BLEU, METEOR, ROUGE-L) of both protocols, as plain functions.

Each function reproduces one published scorer exactly, quirks included (see protocols.py for
which protocol uses which):

- `char_sentence_bleu`: what the MusiLingo / MU-LLaMA / CMI-Bench scripts compute. They call
  NLTK `sentence_bleu([reference], candidate)` on raw STRINGS, so NLTK iterates characters and
  every n-gram is a character n-gram (spaces included). We call NLTK the same way, once per item
  with a list of weight vectors (NLTK then counts the n-grams once and returns one score per
  vector; the values are identical to separate calls). No smoothing: an order with no match
  contributes NLTK's `sys.float_info.min`, so a cumulative score collapses to ~0.
- `corpus_bleu_13a`: what HF `evaluate`'s `bleu` metric computes: 13a tokenisation (sacrebleu's
  `Tokenizer13a`, the code HF copied), then the TensorFlow-NMT corpus BLEU: clipped n-gram
  matches and candidate n-gram counts summed over the corpus, geometric mean of the `max_order`
  precisions (0 when any is 0), brevity penalty exp(1 - r/c) from summed lengths. Written out
  here (not copied) and cross-checked against sacrebleu in the tests.
- `meteor_scores`: NLTK `meteor_score` (needs WordNet) on `wordpunct_tokenize` tokens (the
  reference scripts) or on `word_tokenize` tokens (HF `evaluate`'s meteor, which needs Punkt).
- `rouge_l_scores`: Google's `rouge_score` RougeScorer(['rougeL']) with or without the Porter
  stemmer; `score(reference, candidate)`, so recall = LCS / reference length.
"""
from __future__ import annotations

import functools
import math
import warnings
from collections import Counter
from collections.abc import Sequence

# Single-order weights give BLEU-n alone; the last vector is NLTK's default cumulative BLEU.
CHAR_BLEU_WEIGHTS = [(1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0),
                     (0.0, 0.0, 0.0, 1.0), (0.25, 0.25, 0.25, 0.25)]


def char_sentence_bleu(references: Sequence[str], predictions: Sequence[str]) -> list[list[float]]:
    """Per item: [BLEU-1, BLEU-2, BLEU-3, BLEU-4, cumulative BLEU] on character n-grams."""
    from nltk.translate.bleu_score import sentence_bleu

    scores = []
    with warnings.catch_warnings():
        # NLTK warns on every item with a zero-count order; the zeros are part of the protocol.
        warnings.simplefilter("ignore")
        for reference, prediction in zip(references, predictions):
            value = sentence_bleu([reference], prediction, weights=CHAR_BLEU_WEIGHTS)
            scores.append([float(v) for v in (value if isinstance(value, list) else [value] * 5)])
    return scores


@functools.lru_cache(maxsize=1)
def _tokenizer_13a():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def tokenize_13a(text: str) -> list[str]:
    """mteval-v13a tokenisation as sacrebleu (and HF evaluate's copy of it) does it."""
    return _tokenizer_13a()(text).split()


def _ngram_counts(tokens: Sequence[str], order: int) -> Counter:
    return Counter(tuple(tokens[i:i + order]) for i in range(len(tokens) - order + 1))


def corpus_bleu_13a(references: Sequence[str], predictions: Sequence[str],
                    max_orders: Sequence[int] = (1, 2, 3, 4)) -> dict[int, float]:
    """Corpus BLEU with max n-gram order n, for each n in `max_orders`, one reference per item."""
    top = max(max_orders)
    matches = [0] * (top + 1)
    possible = [0] * (top + 1)
    candidate_length = reference_length = 0
    for reference, prediction in zip(references, predictions):
        ref_tokens, hyp_tokens = tokenize_13a(reference), tokenize_13a(prediction)
        reference_length += len(ref_tokens)
        candidate_length += len(hyp_tokens)
        for order in range(1, top + 1):
            hyp_counts = _ngram_counts(hyp_tokens, order)
            # Clipped matches: a candidate n-gram counts at most as often as the reference has it.
            matches[order] += sum((hyp_counts & _ngram_counts(ref_tokens, order)).values())
            possible[order] += max(0, len(hyp_tokens) - order + 1)
    if reference_length == 0 or candidate_length == 0:
        brevity = 0.0
    else:
        ratio = candidate_length / reference_length
        brevity = 1.0 if ratio > 1.0 else math.exp(1.0 - 1.0 / ratio)
    scores = {}
    for n in max_orders:
        precisions = [matches[o] / possible[o] if possible[o] else 0.0 for o in range(1, n + 1)]
        if min(precisions) > 0:
            geometric_mean = math.exp(sum(math.log(p) for p in precisions) / n)
        else:
            geometric_mean = 0.0
        scores[n] = geometric_mean * brevity
    return scores


class _MemoisedWordNet:
    """WordNet whose `synsets(word)` is memoised: METEOR looks up the same words thousands of
    times, and nltk's `meteor_score` only ever calls `synsets` on the object it is given."""

    def __init__(self, wordnet):
        self._wordnet = wordnet
        self._synsets: dict[str, list] = {}

    def synsets(self, word: str, *args, **kwargs):
        if args or kwargs:
            return self._wordnet.synsets(word, *args, **kwargs)
        if word not in self._synsets:
            self._synsets[word] = self._wordnet.synsets(word)
        return self._synsets[word]


class _MemoisedStemmer:
    """nltk's default METEOR stemmer (PorterStemmer()), memoised: stemming is most of the time."""

    def __init__(self):
        from nltk.stem.porter import PorterStemmer

        self._stemmer = PorterStemmer()
        self._stems: dict[str, str] = {}

    def stem(self, word: str) -> str:
        if word not in self._stems:
            self._stems[word] = self._stemmer.stem(word)
        return self._stems[word]


@functools.lru_cache(maxsize=1)
def _memoised_wordnet() -> _MemoisedWordNet:
    from nltk.corpus import wordnet

    return _MemoisedWordNet(wordnet)


@functools.lru_cache(maxsize=1)
def _memoised_stemmer() -> _MemoisedStemmer:
    return _MemoisedStemmer()


def meteor_scores(references: Sequence[str], predictions: Sequence[str],
                  tokenizer: str) -> list[float]:
    """Per-item NLTK METEOR; `tokenizer` is "wordpunct" or "word" (word_tokenize + Punkt)."""
    from nltk.tokenize import word_tokenize, wordpunct_tokenize
    from nltk.translate.meteor_score import meteor_score

    tokenize = {"wordpunct": wordpunct_tokenize, "word": word_tokenize}[tokenizer]
    wordnet, stemmer = _memoised_wordnet(), _memoised_stemmer()
    return [float(meteor_score([tokenize(reference)], tokenize(prediction),
                               stemmer=stemmer, wordnet=wordnet))
            for reference, prediction in zip(references, predictions)]


def rouge_l_scores(references: Sequence[str], predictions: Sequence[str],
                   use_stemmer: bool) -> list[tuple[float, float, float]]:
    """Per-item rougeL (precision, recall, F-measure) from Google's rouge_score."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
    out = []
    for reference, prediction in zip(references, predictions):
        score = scorer.score(reference, prediction)["rougeL"]
        out.append((float(score.precision), float(score.recall), float(score.fmeasure)))
    return out
