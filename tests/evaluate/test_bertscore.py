"""BERTScore offline: the MiniLM from pip, checked against a direct computation and bert_score."""
from __future__ import annotations

import json

import pytest
import torch

from musilingo.evaluate import score_protocols, score_texts
from musilingo.evaluate.bertscore import (BertScorer, BertScoreUnavailable, encode_sentence,
                                          resolve_model)

PAIRS = [("a calm piano melody with soft strings", "a gentle piano tune accompanied by strings"),
         ("loud distorted electric guitar and drums", "an energetic rock song with heavy guitars"),
         ("a man sings over an acoustic guitar", "a man sings over an acoustic guitar")]


@pytest.fixture(scope="module")
def minilm(minilm_folder):
    return BertScorer(resolve_model("minilm"), device="cpu")


def _direct_bertscore(folder, prediction, reference, layer=6):
    """Greedy cosine matching written out: hidden states of layer `layer`, [CLS]/[SEP] excluded
    from the averages but available as matches (as bert_score does), no idf."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()

    def embed(text):
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            hidden = model(ids, output_hidden_states=True).hidden_states[layer][0]
        keep = torch.tensor([t not in (tokenizer.cls_token_id, tokenizer.sep_token_id)
                             for t in ids[0].tolist()])
        return torch.nn.functional.normalize(hidden, dim=-1), keep

    hyp, hyp_keep = embed(prediction)
    ref, ref_keep = embed(reference)
    similarity = hyp @ ref.T
    precision = similarity.max(dim=1).values[hyp_keep].mean().item()
    recall = similarity.max(dim=0).values[ref_keep].mean().item()
    return precision, recall, 2 * precision * recall / (precision + recall)


def test_identical_strings_score_one(minilm):
    scores = minilm.score(["a man sings", "solo violin"], ["a man sings", "solo violin"])
    assert scores.precision == pytest.approx([1.0, 1.0], abs=1e-5)
    assert scores.recall == pytest.approx([1.0, 1.0], abs=1e-5)
    assert scores.f1 == pytest.approx([1.0, 1.0], abs=1e-5)


def test_matches_direct_greedy_cosine_computation(minilm, minilm_folder):
    predictions, references = zip(*PAIRS)
    scores = minilm.score(list(predictions), list(references))
    for i, (prediction, reference) in enumerate(PAIRS):
        p, r, f = _direct_bertscore(minilm_folder, prediction, reference)
        assert scores.precision[i] == pytest.approx(p, abs=1e-5)
        assert scores.recall[i] == pytest.approx(r, abs=1e-5)
        assert scores.f1[i] == pytest.approx(f, abs=1e-5)
    assert scores.recall[0] < 0.95  # different sentences really differ


def test_matches_bert_score_package(minilm, minilm_folder):
    import bert_score

    predictions, references = map(list, zip(*PAIRS))
    p, r, f = bert_score.score(predictions, references, model_type=str(minilm_folder),
                               num_layers=6)
    ours = minilm.score(predictions, references)
    assert ours.precision == pytest.approx(p.tolist(), abs=1e-5)
    assert ours.recall == pytest.approx(r.tolist(), abs=1e-5)
    assert ours.f1 == pytest.approx(f.tolist(), abs=1e-5)


def test_empty_candidate_scores_zero(minilm):
    scores = minilm.score(["", "a piano"], ["a piano", "a piano"])
    assert (scores.precision[0], scores.recall[0], scores.f1[0]) == (0.0, 0.0, 0.0)
    assert scores.recall[1] == pytest.approx(1.0, abs=1e-5)


def test_protocols_report_their_own_bertscore_field(minilm_folder):
    predictions, references = map(list, zip(*PAIRS))
    musilingo, lp = score_protocols(predictions, references, ["musilingo", "lp-musiccaps"],
                                    bertscore_model="minilm", metrics="bertscore")
    assert "BERTScore-R" in [r.name for r in musilingo.headline]
    assert "BERTScore-F1" in [r.name for r in lp.headline]
    assert musilingo.value("BERTScore-R") == lp.value("BERTScore-R")  # one shared run
    assert musilingo.value("BERTScore-R") != musilingo.value("BERTScore-F1")
    assert musilingo.bertscore_model.startswith("minilm (layer 6")
    # tables name the model in the column, so MiniLM values never pass for roberta-large ones
    assert "| BERTScore-R (minilm) |" in musilingo.to_markdown()
    # a local folder works the same as the alias
    folder = score_texts(predictions, references, "musilingo", metrics="bertscore",
                         bertscore_model=str(minilm_folder), bertscore_layer=6)
    assert folder.value("BERTScore-R") == pytest.approx(musilingo.value("BERTScore-R"), abs=1e-6)


def test_roberta_large_offline_is_reported_missing_with_the_reason():
    report = score_texts(["a piano"], ["a piano"], "musilingo", metrics="bertscore")
    reason = ("could not load roberta-large offline; pass --bertscore-model minilm or a local "
              "folder")
    assert report.value("BERTScore-R") is None
    bertscore_missing = {k: v for k, v in report.missing.items() if k.startswith("BERTScore")}
    assert bertscore_missing == {"BERTScore-P": reason, "BERTScore-R": reason,
                                 "BERTScore-F1": reason}
    assert f"- missing BERTScore-P, BERTScore-R, BERTScore-F1: {reason}" in report.to_markdown()


def test_unknown_hub_model_without_layer_is_refused():
    with pytest.raises(BertScoreUnavailable, match="no default layer"):
        resolve_model("someone/some-model")


def test_roberta_tokenizer_gets_the_prefix_space_bert_score_asked_for(tmp_path):
    """bert_score encodes RoBERTa text with add_prefix_space=True, which transformers 5 ignores;
    our loader must make the first word 'Ġhel' (with the space marker), not 'hel'."""
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    byte_chars = [chr(c) for c in range(ord("!"), ord("~") + 1)] + ["Ġ"]
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for token in byte_chars + ["Ġh", "Ġhe", "he", "Ġhel", "hel", "<mask>"]:
        vocab.setdefault(token, len(vocab))
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    merges = ["Ġ h", "Ġh e", "h e", "Ġhe l", "he l"]
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    RobertaTokenizer(vocab=str(tmp_path / "vocab.json"), merges=str(tmp_path / "merges.txt"),
                     model_max_length=64).save_pretrained(tmp_path)
    config = RobertaConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=32,
                           max_position_embeddings=80)
    torch.manual_seed(0)
    RobertaModel(config).save_pretrained(tmp_path)
    scorer = BertScorer(resolve_model(str(tmp_path), 1), device="cpu")
    tokens = scorer.tokenizer.convert_ids_to_tokens(encode_sentence(scorer.tokenizer, "hel he"))
    assert tokens == ["<s>", "Ġhel", "Ġhe", "</s>"]
    assert len(scorer.model.encoder.layer) == 1  # cut after the requested layer
    assert scorer.score(["hel he"], ["hel he"]).f1 == pytest.approx([1.0], abs=1e-5)


def test_bad_model_folders_are_reported_not_crashed(tmp_path):
    with pytest.raises(BertScoreUnavailable, match="folder ./no/such/model not found"):
        resolve_model("./no/such/model")
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(BertScoreUnavailable, match="not a transformers model folder"):
        resolve_model(str(tmp_path / "empty-model"))
    report = score_texts(["a"], ["a"], "lp-musiccaps", metrics="bertscore",
                         bertscore_model=str(tmp_path / "empty-model"))
    assert "not a transformers model folder" in report.missing["BERTScore-F1"]
