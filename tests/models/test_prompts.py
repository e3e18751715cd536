"""The paper's token layout and label masks, checked token by token with SmolLM2's real tokenizer."""
from __future__ import annotations

import pytest

from musilingo.models.llm import load_tokenizer
from musilingo.models.prompts import (CAPTION_QUESTION, IGNORE, answer_from_generation,
                                      get_template, sequence_layout, tokenize_example)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("tiny-llama")


def test_caption_layout_and_labels(tok):
    t = get_template("caption")
    ex = tokenize_example(tok, t, target="A calm piano piece.")
    ids, labels = sequence_layout(ex, num_audio=3)
    # [BOS] [audio x3] caption + "\n": only the caption carries labels.
    assert ids[0] == tok.bos_token_id and ids[1:4] == [-1, -1, -1]
    assert tok.decode(ids[4:]) == "A calm piano piece.\n"
    assert labels[:4] == [IGNORE] * 4
    assert labels[4:] == ids[4:]
    assert len(labels) == len(ids)


def test_caption_truncated_to_32_tokens(tok):
    long = " ".join(["guitar"] * 100)
    ex = tokenize_example(tok, get_template("caption"), target=long)
    assert len(ex.target) == 32
    # The end symbol was cut with the tail, as in the reference code.
    assert not tok.decode(ex.target).endswith("\n")


def test_instruct_layout_and_labels_token_by_token(tok):
    t = get_template("instruct")
    q, a = "What instrument is playing?", "A piano."
    ex = tokenize_example(tok, t, question=q, target=a)
    ids, labels = sequence_layout(ex, num_audio=2)
    before = [tok.bos_token_id] + tok("###Human: <Audio>", add_special_tokens=False)["input_ids"]
    # SmolLM2's byte-level BPE folds a word's leading space into the word: the prompt's trailing
    # space starts the answer (" A"), instead of a lone space token followed by a no-space "A".
    after = tok("</Audio> " + q + " ###Assistant:", add_special_tokens=False)["input_ids"]
    target = tok(" " + a + "###", add_special_tokens=False)["input_ids"]
    assert ids == before + [-1, -1] + after + target
    assert tok.convert_ids_to_tokens(target[0]) == "\u0120A"  # "ĠA": the ordinary word token
    # Same text as the paper's template: only the cut between prompt and target moved.
    assert tok.decode(ex.after + ex.target) == "</Audio> " + q + " ###Assistant: " + a + "###"
    for pos, (i, lab) in enumerate(zip(ids, labels)):
        in_target = pos >= len(before) + 2 + len(after)
        assert lab == (i if in_target else IGNORE), f"position {pos}"
    # <Audio> and </Audio> are plain text: no token id outside the tokenizer's own vocabulary.
    assert tok.decode(ex.before[1:]) == "###Human: <Audio>"
    assert tok.decode(ex.after).startswith("</Audio> What instrument")
    # Generation sees exactly the prompt that training saw.
    assert tokenize_example(tok, t, question=q).after == ex.after


class _SentencePieceLike:
    """A tokenizer whose spaces are tokens of their own (like LLaMA-2's with its dummy prefix):
    one id per character, so " the" is 4 tokens."""

    bos_token_id = 1

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(ch) for ch in text]}


def test_spaces_stay_in_the_prompt_for_tokenizers_without_space_words():
    sp = _SentencePieceLike()
    ex = tokenize_example(sp, get_template("instruct"), question="Q?", target="Yes.")
    assert "".join(map(chr, ex.after)) == "</Audio> Q? ###Assistant: "  # the reference layout
    assert "".join(map(chr, ex.target)) == "Yes.###"


def test_instruct_truncates_target_only(tok):
    t = get_template("instruct")
    ex = tokenize_example(tok, t, question="Describe it " * 100, target="word " * 400)
    assert len(ex.target) == 160
    assert len(ex.after) > 160  # the question is never truncated


def test_prompt_only_for_generation_and_answer_cut(tok):
    t = get_template("instruct")
    ex = tokenize_example(tok, t, question=CAPTION_QUESTION)
    assert ex.target == [] and all(label == IGNORE for label in ex.text_labels)
    assert answer_from_generation(" A piano.### Human: more", t) == "A piano."
    assert answer_from_generation("A song.\nnext", get_template("caption")) == "A song."


def test_custom_length_and_unknown_template():
    from musilingo.errors import UserError

    assert get_template("instruct", 10).max_target_tokens == 10
    with pytest.raises(UserError):
        get_template("chat")


# ------------------------------------------------------------------ prompt=chat (the LLM's own)
def test_chat_template_layout_id_by_id_with_smollm2(tok):
    """SmolLM2's ChatML: the audio opens the user turn, the question follows, the answer and its
    <|im_end|> carry the only labels; no BOS is added in front of the template's own tokens."""
    from musilingo.models.prompts import chat_template

    t = chat_template(tok, "instruct")
    assert (t.name, t.end, t.bos, t.has_question) == ("chat-instruct", "<|im_end|>", False, True)
    ex = tokenize_example(tok, t, "What plays?", "A piano.")
    im_start, im_end, newline = 1, 2, 198
    assert ex.before[:3] == [im_start, 9690, newline]                # <|im_start|>system\n
    assert ex.before[-3:] == [im_start, 4093, newline]               # <|im_start|>user\n
    assert ex.before.count(im_start) == 2 and tok.decode(ex.before).startswith(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    # " What plays?<|im_end|>\n<|im_start|>assistant\n"
    assert ex.after == [1812, 4566, 47, im_end, newline, im_start, 520, 9531, newline]
    assert ex.target == [49, 15717, 30, im_end]                      # "A piano.<|im_end|>"
    ids, labels = sequence_layout(ex, num_audio=2)
    assert labels == [IGNORE] * (len(ids) - 4) + [49, 15717, 30, im_end]
    caption = chat_template(tok, "pretrain")                         # stage 1 asks one question
    assert not caption.has_question and CAPTION_QUESTION in caption.text
    assert tokenize_example(tok, caption, target="Calm.").target[-1] == im_end
    # The run folder keeps the rendered template; an older one without `bos` reads as before.
    from musilingo.models.prompts import PromptTemplate

    assert PromptTemplate.from_dict(t.to_dict()) == t
    old = get_template("instruct").to_dict()
    del old["bos"]
    assert PromptTemplate.from_dict(old).bos is True


def test_an_empty_system_turn_saves_the_default_prompt_and_chat_keeps_it(tok):
    """system_prompt=none: an empty system turn instead of SmolLM2's 21-token default, in the
    rendered template (saved with the run) and in every later turn of a chat."""
    from types import SimpleNamespace

    from musilingo.infer.generation import chat_example, prompt_example
    from musilingo.models.prompts import PromptTemplate, chat_template

    default = tokenize_example(tok, chat_template(tok, "instruct"), "What plays?", "A piano.")
    t = chat_template(tok, "instruct", system="")
    lean = tokenize_example(tok, t, "What plays?", "A piano.")
    assert t.system == "" and t.text.startswith("<|im_start|>system\n<|im_end|>\n<|im_start|>user")
    assert len(default.before) - len(lean.before) == 16
    assert (lean.after, lean.target) == (default.after, default.target)
    assert PromptTemplate.from_dict(t.to_dict()) == t
    model = SimpleNamespace(template=t, tokenizer=tok)
    assert chat_example(model, [("What plays?", None)]) == prompt_example(model, "What plays?")
    two = chat_example(model, [("What plays?", "A piano."), ("And the tempo?", None)])
    assert "You are a helpful" not in tok.decode(two.before)


def test_the_paper_layout_is_unchanged_by_the_prompt_setting(tok):
    from musilingo.models.prompts import stage_template

    assert stage_template(tok, "instruct", "vicuna") == get_template("instruct")
    assert stage_template(None, "pretrain", "vicuna", 20) == get_template("caption", 20)


def test_a_runaway_or_huge_chat_template_is_refused_in_one_line(tok, monkeypatch):
    """A chat template is code from the model's files: a nested loop hung `train prompt=chat`
    without limit, and one rendering 50 MB led to a 25.6 GB allocation. Both are now refused."""
    import copy

    from musilingo.errors import UserError
    from musilingo.models import prompts

    hang = copy.copy(tok)
    hang.chat_template = ("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}"
                          "{% endfor %}{{ messages[0]['content'] }}")
    monkeypatch.setattr(prompts, "RENDER_SECONDS", 0.5)
    with pytest.raises(UserError, match="did not finish rendering one turn in 0.5 s"):
        prompts.chat_template(hang, "instruct")
    huge = copy.copy(tok)
    huge.chat_template = ("{% for m in messages %}{{ m['content'] * 5000 }}{% endfor %}"
                          "{% if add_generation_prompt %}A:{% endif %}")
    with pytest.raises(UserError, match="renders one short turn as .* characters"):
        prompts.chat_template(huge, "instruct")
