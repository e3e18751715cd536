"""The LLaMA / Vicuna token layout, with the real 32,000-token LLaMA tokenizer.

MusiLingo's LLM is Vicuna-7B, whose tokenizer is LLaMA's SentencePiece model. These tests check
that (1) we load such a tokenizer with SentencePiece's ids, not with transformers 5's rebuilt
`LlamaTokenizer` (which drops leading spaces), (2) stage-1 and stage-2 examples tokenise exactly
as the reference code does, and (3) generation stops on "###" however the LLM spells it.
"""
from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
import torch

from musilingo.models.llm import load_tokenizer
from musilingo.models.musilingo import make_batch
from musilingo.models.prompts import (AUDIO_MARKER, IGNORE, get_template, space_joins_word,
                                      tokenize_example)
from tests.helpers.models import build_model

# The reference code's stage-2 prompt: prompt_template.format("<Audio><AudioHere></Audio> " + q).
REFERENCE_TEMPLATE = "###Human: {} ###Assistant: "


@pytest.fixture(scope="module")
def llama_folder(shared_data):
    return shared_data / "tokenizers" / "llama"


@pytest.fixture(scope="module")
def tok(llama_folder):
    return load_tokenizer(str(llama_folder))


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_sentencepiece_ids_of_the_llama_vocabulary(tok):
    assert len(tok) == 32000
    assert tok("Hello world")["input_ids"] == [1, 15043, 3186]
    assert ids(tok, " the") == [29871, 278]        # the leading space survives
    assert ids(tok, "###") == [835]
    assert ids(tok, "\n###") == [29871, 13, 2277, 29937]
    assert ids(tok, "Hi###") == [6324, 2277, 29937]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 2)  # pad = eos
    assert not space_joins_word(tok)                # so the reference layout is kept


def test_a_llama_tokenizer_class_folder_keeps_sentencepiece_ids(llama_folder, tmp_path):
    """A real LLaMA/Vicuna folder names `LlamaTokenizer(Fast)`, which transformers 5 rebuilds
    with a Metaspace pre-tokenizer; our loader uses tokenizer.json as written."""
    folder = tmp_path / "vicuna-like"
    shutil.copytree(llama_folder, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(
        json.dumps(dict(config, tokenizer_class="LlamaTokenizerFast")))
    tok = load_tokenizer(str(folder))
    assert ids(tok, " the") == [29871, 278]
    assert ids(tok, "a  b") == ids(load_tokenizer(str(llama_folder)), "a  b")
    assert not space_joins_word(tok)


def test_a_sentencepiece_model_folder_gives_sentencepiece_ids(tmp_path):
    """A folder with only `tokenizer.model` (as Vicuna ships): our ids are sentencepiece's own."""
    import sentencepiece as spm

    rng = random.Random(0)
    words = ("the music is a slow piano piece with soft strings and a gentle melody drums guitar "
             "bass fast upbeat tempo minor major vocals").split()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(400)))
    folder = tmp_path / "sp"
    folder.mkdir()
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "tokenizer"), vocab_size=400,
        model_type="bpe", byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        character_coverage=1.0, remove_extra_whitespaces=False, minloglevel=2)
    (folder / "tokenizer.vocab").unlink()
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
         "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False}))
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    tok = load_tokenizer(str(folder))
    texts = [" the", " the music", "the  music", "  two leading", "\n###", "Hi###",
             "###Human: <Audio>", "</Audio> What is the tempo? ###Assistant: ", "slow piano###"]
    for text in texts:
        assert ids(tok, text) == sp.encode(text), text
    assert (tok.bos_token_id, tok.pad_token_id) == (1, 2)
    assert not space_joins_word(tok)


def test_stage1_caption_tokenises_as_the_reference_code(tok):
    caption = "A mellow jazz trumpet solo over a walking bass line."
    ex = tokenize_example(tok, get_template("caption"), target=caption)
    # Reference: [BOS] [audio] then tokenizer(caption + end_sym, add_special_tokens=False,
    # truncation=True, max_length=32); end_sym "\n" for stage 1.
    assert ex.before == [1] and ex.after == []
    assert ex.target == ids(tok, caption + "\n")[:32]
    assert ex.target[-2:] == [29889, 13]            # "." then "\n" (<0x0A>)
    long = " ".join(["guitar"] * 60)
    assert tokenize_example(tok, get_template("caption"), target=long).target == \
        ids(tok, long + "\n")[:32]


def test_stage2_instruction_tokenises_as_the_reference_code(tok):
    question, answer = "What instrument is playing?", "Yes, a trumpet."
    template = get_template("instruct")
    prompt = REFERENCE_TEMPLATE.format("<Audio>" + AUDIO_MARKER + "</Audio> " + question)
    p_before, p_after = prompt.split(AUDIO_MARKER)
    ex = tokenize_example(tok, template, question=question, target=answer)
    assert ex.before == [1] + ids(tok, p_before)
    assert ex.after == ids(tok, p_after)
    assert ex.target == ids(tok, answer + "###")[:160]
    # The ids themselves, as SentencePiece cuts the pieces: a dummy-prefix space before each
    # piece, the prompt's trailing space as its own "▁" (29871), and "###" after "." spelt
    # "##" "#" (2277 29937), not 835.
    # <s> ▁### H uman : ▁< Audio >
    assert ex.before == [1, 835, 29950, 7889, 29901, 529, 17111, 29958]
    # ▁</ Audio > ▁What ▁instrument ▁is ▁playing ? ▁### Ass istant : ▁
    assert ex.after == [1533, 17111, 29958, 1724, 11395, 338, 8743, 29973, 835, 7900, 22137,
                        29901, 29871]
    # ▁Yes , ▁a ▁tr ump et . ## #
    assert ex.target == [3869, 29892, 263, 534, 3427, 300, 29889, 2277, 29937]
    long = " ".join(["bass"] * 300)
    cut = tokenize_example(tok, template, question=question, target=long)
    assert len(cut.target) == 160 and cut.target == ids(tok, long + "###")[:160]
    assert cut.after == ex.after                    # only the target is truncated


def test_batch_pads_with_eos_and_labels_only_the_targets(tok):
    template = get_template("instruct")
    a = tokenize_example(tok, template, question="Tempo?", target="Fast.")
    b = tokenize_example(tok, template, question="Which instrument is it?", target="A piano.")
    feats = [(np.zeros((3, 2, 4), np.float32), np.array([325, 49], np.int32))] * 2
    batch = make_batch([a, b], feats, pad_id=tok.pad_token_id)
    for row, ex in enumerate((a, b)):
        n = len(ex.text_ids)
        assert batch["text_ids"][row, :n].tolist() == ex.text_ids
        assert set(batch["text_ids"][row, n:].tolist()) <= {2}
        labels = batch["labels"][row].tolist()
        prompt = len(ex.before) + len(ex.after)
        assert labels[:prompt] == [IGNORE] * prompt
        assert labels[prompt:n] == ex.target
        assert set(labels[n:]) <= {IGNORE}


@pytest.fixture(scope="module")
def scripted_llm(tok, tmp_path_factory, llama_folder):
    """A tiny LlamaForCausalLM over the LLaMA vocabulary whose greedy output we script: its
    layers add nothing (zero output projections), so each position's logits depend only on that
    position's token, and `next_token` decides the successor of chosen tokens."""
    from transformers import LlamaConfig, LlamaForCausalLM


    config = LlamaConfig(vocab_size=32000, hidden_size=64, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    llm = LlamaForCausalLM(config)
    with torch.no_grad():
        for layer in llm.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        llm.lm_head.weight.zero_()
    folder = tmp_path_factory.mktemp("llm") / "scripted-llama"
    llm.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(llama_folder / name, folder / name)
    return build_model(str(folder), encoder_dim=4, num_layers=3, stride=325, t=325,
                       template=get_template("instruct"))


def script(model, chain):
    """Greedy decoding after the prompt's last token ("▁", 29871) emits `chain`, then "▁The"
    (450) forever."""
    emb, head = model.llm.model.embed_tokens.weight, model.llm.lm_head.weight
    steps = [29871, *chain, 450]
    with torch.no_grad():
        head.zero_()
        for k, (cur, nxt) in enumerate(zip(steps, steps[1:] + [450])):
            basis = torch.zeros(emb.shape[1])
            basis[k] = 1.0
            emb[cur] = basis
            head[nxt] = 10 * basis


@pytest.mark.parametrize("chain, answer", [([3869, 835], "Yes"),              # "Yes" "###"
                                           ([6324, 2277, 29937], "Hi"),       # "Hi" "##" "#"
                                           ([3869, 13, 2277, 29937], "Yes")])  # "Yes" "\n" "##" "#"
def test_generation_stops_on_every_encoding_of_the_end_symbol(scripted_llm, chain, answer):
    from musilingo.infer.config import GenerationConfig
    from musilingo.infer.generation import generate, prompt_example

    script(scripted_llm, chain)
    prompt = prompt_example(scripted_llm, "What is playing?")
    assert prompt.after[-1] == 29871
    feats = (np.zeros((3, 1, 4), np.float32), np.array([325], np.int32))
    (out,) = generate(scripted_llm, [prompt], [feats], GenerationConfig(max_new_tokens=12))
    assert out.new_tokens == len(chain)             # stopped right after "###"
    assert out.answer == answer and out.text.rstrip().endswith("###")
    # Without an end symbol in the chain, decoding runs to the token limit.
    script(scripted_llm, [3869, 13])
    (more,) = generate(scripted_llm, [prompt], [feats], GenerationConfig(max_new_tokens=12))
    assert more.new_tokens == 12


# Llama-2-chat's published chat template (tokenizer_config.json of meta-llama/Llama-2-7b-chat-hf).
LLAMA2_CHAT = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception("
    "'Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + "
    "system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}"
    "{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}")


def test_prompt_chat_needs_a_chat_template_and_lays_out_llama2_id_by_id(llama_folder):
    """The LLaMA vocabulary has no chat template: prompt=chat says which setting to use. With
    Llama-2-chat's template the pieces are the ids of the template's own text ("<s>[INST] What
    plays? [/INST] A piano." + eos), the audio between "[INST]" and the question."""
    from musilingo.errors import UserError
    from musilingo.models.prompts import chat_template, stage_template, tokenize_example

    tok = load_tokenizer(str(llama_folder))
    with pytest.raises(UserError, match="no chat template .*use prompt=vicuna"):
        stage_template(tok, "instruct", "chat")
    tok.chat_template = LLAMA2_CHAT
    t = chat_template(tok, "instruct")
    assert (t.end, t.bos) == ("</s>", False)
    ex = tokenize_example(tok, t, "What plays?", "A piano.")
    whole = ids(tok, "<s>[INST] What plays? [/INST] A piano.") + [tok.eos_token_id]
    assert ex.before == [1, 518, 25580, 29962] == whole[:4]           # <s> ▁[ INST ]
    assert ex.after == [1724, 13582, 29973, 518, 29914, 25580, 29962] == whole[4:11]
    assert ex.target == [319, 11914, 29889, 2] == whole[11:]          # ▁A ▁piano . </s>
