"""Seconds to score 2,839 caption pairs, per metric family and protocol (BERTScore: MiniLM).

Why 2,839: about the size of the MusicCaps test set (2,858 clips). The pairs are real outputs:
the 2,813 CMI-Bench Qwen2-Audio MusicCaps captions plus the first 26 MusCaps captions, from the
shared test data (../shared/data or $MUSILINGO_SHARED_DATA).

    python benchmarks/bench_score.py [--n 2839] [--bertscore-model minilm] [--json out.json]

One-time costs are timed on their own (loading WordNet and Punkt, loading the BERTScore model),
so the per-protocol lines are the scoring itself; BERTScore runs once and serves both protocols.
With --end-to-end, `score_protocols` for both protocols is also timed in a fresh job, as
`musilingo score --protocol both` runs it (WordNet already loaded in this process). Wall and
CPU seconds are both printed: on a shared machine the CPU time is the steadier number.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MUSILINGO_SHARED_DATA", REPO.parent / "shared" / "data"))


def caption_pairs(n: int) -> tuple[list[str], list[str]]:
    cmi = json.loads((SHARED / "outputs/cmi-bench_captioning/qwen2/qwen2_MusicCaps.json")
                     .read_text())
    muscaps = json.loads((SHARED / "outputs/muscaps_musiccaps_captioning_eval/"
                                   "inference_results.json").read_text())
    pairs = [(i["response"], i["correct_answer"]) for i in cmi]
    pairs += [(v["predictions"], v["true_captions"]) for v in muscaps.values()]
    pairs = pairs[:n]
    return [p for p, _ in pairs], [r for _, r in pairs]


def timed(fn, *args, **kwargs) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): CPU time is what a busy machine distorts
    least, wall time is what a user waits."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2839)
    parser.add_argument("--bertscore-model", default="minilm")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--end-to-end", action="store_true",
                        help="also time score_protocols for both protocols (runs BERTScore again)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from musilingo.evaluate import ngram_metrics as m
    from musilingo.evaluate.bertscore import BertScorer, resolve_model
    from musilingo.evaluate.protocols import score_protocols
    from musilingo.evaluate.wordnet import ensure_nltk_data

    predictions, references = caption_pairs(args.n)
    rows: list[tuple[str, str, tuple[float, float]]] = []

    def load_nltk():
        from nltk.corpus import wordnet
        from nltk.tokenize import word_tokenize

        ensure_nltk_data(prepare=True)
        wordnet.synsets("music")
        word_tokenize("Warm up. Punkt loads here.")

    rows.append(("(once)", "load WordNet + Punkt", timed(load_nltk)))
    rows.append(("musilingo", "BLEU-1..4 + BLEU (char sentence BLEU)",
                 timed(m.char_sentence_bleu, references, predictions)))
    rows.append(("musilingo", "METEOR (wordpunct)",
                 timed(m.meteor_scores, references, predictions, "wordpunct")))
    rows.append(("musilingo", "ROUGE-L (stemmed)",
                 timed(m.rouge_l_scores, references, predictions, True)))
    rows.append(("lp-musiccaps", "BLEU-1..4 (corpus, 13a)",
                 timed(m.corpus_bleu_13a, references, predictions)))
    rows.append(("lp-musiccaps", "METEOR (word_tokenize)",
                 timed(m.meteor_scores, references, predictions, "word")))
    rows.append(("lp-musiccaps", "ROUGE-L (no stemmer)",
                 timed(m.rouge_l_scores, references, predictions, False)))
    spec = resolve_model(args.bertscore_model)
    loaded = []
    rows.append(("(once)", f"load BERTScore model {spec.name}",
                 timed(lambda: loaded.append(BertScorer(spec)))))
    rows.append(("both (shared)", f"BERTScore P/R/F1 ({spec.describe()})",
                 timed(loaded[0].score, predictions, references)))
    if args.end_to_end:
        rows.append(("both", "end to end: score_protocols(musilingo + lp-musiccaps)",
                     timed(score_protocols, predictions, references,
                           ["musilingo", "lp-musiccaps"], bertscore_model=args.bertscore_model)))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{len(predictions):,} pairs, {os.cpu_count()} CPUs, load average {load:.1f}\n")
    print("| protocol | metric | wall s | CPU s |\n|---|---|---:|---:|")
    for protocol, metric, (wall, cpu) in rows:
        print(f"| {protocol} | {metric} | {wall:.2f} | {cpu:.2f} |")
    if args.json:
        records = [{"protocol": p, "metric": m, "wall_seconds": w, "cpu_seconds": c}
                   for p, m, (w, c) in rows]
        args.json.write_text(json.dumps({"n_pairs": len(predictions), "load_average": load,
                                         "rows": records}, indent=2))


if __name__ == "__main__":
    main()
