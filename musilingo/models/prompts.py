"""Prompt templates and label masks: the token layout the LLM sees, as pure functions.

Training and inference must lay out tokens identically, so both call `tokenize_example`. The
layout is the reference code's (docs/REFERENCE.md section 2):

    caption  (stage 1):  [BOS] [audio tokens] caption + "\\n"               (target <= 32 tokens)
    instruct (stage 2):  [BOS] "###Human: <Audio>" [audio tokens]
                         "</Audio> " + question + " ###Assistant: " answer + "###"
                                                                           (target <= 160 tokens)

Only the target (caption or answer, with its end symbol) carries labels; BOS, prompt text, audio
positions and padding are -100. As in the reference code, the prompt pieces and the target are
tokenised separately without special tokens, and only the target is truncated (so a long answer
may lose its end symbol). One exception, for tokenizers that fold a word's leading space into
the word's token (byte-level BPE: SmolLM2, GPT-2, LLaMA-3): there the prompt's trailing space
("###Assistant: ") goes to the target, so the answer starts with the ordinary " Yes" token instead
of a lone space token followed by a rare no-space "Yes". The text is the same; only the cut
between prompt and target tokens moves. Measured with SmolLM2 on the demo's Q&A: the first-step
loss fell from 6.2 to 4.3. Sentencepiece tokenizers (LLaMA-2, Vicuna) keep the reference layout.
`<Audio>` and `</Audio>` are plain text, not new vocabulary; the audio embeddings go where
`<AudioHere>` stands.

`prompt=chat` lays the same example out in the LLM's own chat template instead (`chat_template`):
the audio tokens open the user turn, the question follows them (stage 1 asks the reference
code's caption question), the loss covers the assistant's answer and the template's end-of-turn
text only, and generation stops there. The template renders its own special tokens (BOS
included), so no BOS is added in front of it.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Literal

from ..data.items import CAPTION_QUESTION

AUDIO_MARKER = "<AudioHere>"
IGNORE = -100


@dataclass(frozen=True)
class PromptTemplate:
    """How one example becomes text: `text` holds `<AudioHere>` and optionally `{question}`."""

    name: str
    text: str
    end: str
    """Appended to every target; generation stops when it appears."""
    max_target_tokens: int
    bos: bool = True
    """Put the tokenizer's BOS in front (False for chat templates, which render their own)."""
    system: str | None = None
    """Chat templates: the system turn rendered in front ("" an empty one); None: the
    template's own default (SmolLM2's names itself in 21 tokens of every example)."""

    @property
    def has_question(self) -> bool:
        return "{question}" in self.text

    def to_dict(self) -> dict:
        """The template as the run folder keeps it (no `system` key unless one was chosen, so
        templates without one read and write as before)."""
        out = asdict(self)
        if out["system"] is None:
            out.pop("system")
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "PromptTemplate":
        return cls(name=d["name"], text=d["text"], end=d["end"],
                   max_target_tokens=int(d["max_target_tokens"]), bos=bool(d.get("bos", True)),
                   system=d.get("system"))

    @property
    def is_chat(self) -> bool:
        return self.name.startswith("chat")


TEMPLATES = {
    "caption": PromptTemplate("caption", AUDIO_MARKER, "\n", 32),
    "instruct": PromptTemplate(
        "instruct", "###Human: <Audio>" + AUDIO_MARKER + "</Audio> {question} ###Assistant: ",
        "###", 160),
}
STAGE_TEMPLATES = {"pretrain": "caption", "instruct": "instruct"}
Prompt = Literal["vicuna", "chat"]  # the paper's layout above, or the LLM tokenizer's chat template


def stage_template(tokenizer, stage: str, prompt: str = "vicuna",
                   max_target_tokens: int | None = None,
                   system: str | None = None) -> PromptTemplate:
    """The template a training stage uses under `prompt` (vicuna or chat; `system`: the chat
    template's system turn, None for its default)."""
    if prompt == "chat":
        return chat_template(tokenizer, stage, max_target_tokens, system)
    return get_template(STAGE_TEMPLATES[stage], max_target_tokens)


def chat_messages(turns: list[tuple[str, str | None]], system: str | None = None) -> list[dict]:
    """A conversation [(question, answer or None), ...] as chat-template messages, after the
    `system` turn when one is given; the audio opens the first user turn (training renders one
    turn, chat renders them all)."""
    messages = [] if system is None else [{"role": "system", "content": system}]
    for i, (question, answer) in enumerate(turns):
        messages.append({"role": "user",
                         "content": f"{AUDIO_MARKER} {question}" if i == 0 else question})
        if answer is not None:
            messages.append({"role": "assistant", "content": answer})
    return messages


def chat_template(tokenizer, stage: str, max_target_tokens: int | None = None,
                  system: str | None = None) -> PromptTemplate:
    """The LLM tokenizer's own chat template as a PromptTemplate: one user turn holding the audio
    and the question (stage 1: the caption question, fixed), the assistant's answer, and the
    template's end-of-turn text as the end symbol. Rendered once, stored in the run folder."""
    from ..errors import UserError

    if not getattr(tokenizer, "chat_template", None):
        raise UserError("prompt=chat: the LLM's tokenizer has no chat template (its "
                        "tokenizer_config.json has no chat_template); use prompt=vicuna")
    question = "{question}" if stage == "instruct" else CAPTION_QUESTION
    probe = "MusilingoAnswerProbe"  # letters only: templates strip() message content
    try:
        with render_limit(RENDER_SECONDS):
            prompt = tokenizer.apply_chat_template(chat_messages([(question, None)], system),
                                                   tokenize=False, add_generation_prompt=True)
            full = tokenizer.apply_chat_template(chat_messages([(question, probe)], system),
                                                 tokenize=False)
    except RenderTimeout:
        raise UserError(f"prompt=chat: the tokenizer's chat template did not finish rendering "
                        f"one turn in {RENDER_SECONDS} s (a runaway loop?); fix the template or "
                        "use prompt=vicuna") from None
    except Exception as exc:  # a template that needs other roles or raises on its own
        raise UserError(f"prompt=chat: the tokenizer's chat template cannot render a user turn "
                        f"and an answer ({type(exc).__name__}: {str(exc)[:120]}); use "
                        "prompt=vicuna") from None
    if len(full) > MAX_TEMPLATE_CHARS:
        raise UserError(f"prompt=chat: the tokenizer's chat template renders one short turn as "
                        f"{len(full):,} characters (more than {MAX_TEMPLATE_CHARS:,}; a template's "
                        "own text is a few hundred); fix the template or use prompt=vicuna")
    if AUDIO_MARKER not in prompt or not full.startswith(prompt) or probe not in full:
        raise UserError("prompt=chat: the tokenizer's chat template changes the message text or "
                        "the turn layout between prompt and answer; use prompt=vicuna")
    # What the assistant turn puts before the answer (Llama-2: a space) belongs to the prompt.
    at = full.index(probe)
    prompt += full[len(prompt):at]
    end = full[at + len(probe):].strip()
    if not end:
        raise UserError("prompt=chat: the tokenizer's chat template ends an answer with nothing "
                        "(no end-of-turn text to stop on); use prompt=vicuna")
    limit = max_target_tokens or TEMPLATES[STAGE_TEMPLATES[stage]].max_target_tokens
    name = "chat-instruct" if stage == "instruct" else "chat-caption"
    return PromptTemplate(name, prompt, end, int(limit), bos=False, system=system)


RENDER_SECONDS = 10          # a chat template renders a turn in milliseconds
MAX_TEMPLATE_CHARS = 20_000  # what one short turn may render to


class RenderTimeout(Exception):
    pass


@contextmanager
def render_limit(seconds: float):
    """Interrupt the block after `seconds` (a chat template is code from the model's files: a
    nested loop must not hang the run). Uses the process's real-time timer, so only in the main
    thread; elsewhere the block runs unbounded."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise RenderTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def get_template(name: str, max_target_tokens: int | None = None) -> PromptTemplate:
    from ..errors import UserError

    if name not in TEMPLATES:
        raise UserError(f"unknown prompt template {name!r}: use one of {', '.join(TEMPLATES)}")
    t = TEMPLATES[name]
    if max_target_tokens is not None:
        t = PromptTemplate(t.name, t.text, t.end, int(max_target_tokens), t.bos)
    return t


@dataclass
class TokenizedExample:
    """Token ids around the audio: [before] [audio x n] [after] [target]."""

    before: list[int]
    after: list[int]
    target: list[int] = field(default_factory=list)

    @property
    def text_ids(self) -> list[int]:
        """All text tokens in order, without the audio (what one embedding lookup needs)."""
        return self.before + self.after + self.target

    @property
    def text_labels(self) -> list[int]:
        """Labels aligned with `text_ids`: the target's ids, -100 elsewhere."""
        return [IGNORE] * (len(self.before) + len(self.after)) + list(self.target)


def render(template: PromptTemplate, question: str | None = None) -> tuple[str, str]:
    """The prompt text before and after the audio marker."""
    text = template.text
    if template.has_question:
        text = text.replace("{question}", question or "")
    before, after = text.split(AUDIO_MARKER)
    return before, after


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def space_joins_word(tokenizer) -> bool:
    """True when " the" is one token: the tokenizer attaches a leading space to the word."""
    cached = getattr(tokenizer, "_musilingo_space_joins_word", None)
    if cached is None:
        cached = len(_encode(tokenizer, " the")) == 1
        try:
            tokenizer._musilingo_space_joins_word = cached
        except AttributeError:  # a tokenizer that refuses new attributes: recompute next time
            pass
    return cached


def split_trailing_space(tokenizer, prompt: str) -> tuple[str, str]:
    """(prompt to tokenise, text that starts the answer): the prompt's trailing spaces move to
    the answer for tokenizers whose words carry their leading space (see the module docstring)."""
    stripped = prompt.rstrip(" ")
    if stripped != prompt and space_joins_word(tokenizer):
        return stripped, prompt[len(stripped):]
    return prompt, ""


def adds_prefix_space(tokenizer) -> bool:
    """True for SentencePiece-style tokenizers that start every encoded text with a word
    boundary ("the" -> "▁the", as " the" ends): a space written next to a cut is then doubled."""
    return _encode(tokenizer, "the") == _encode(tokenizer, " the")[-1:]


def tokenize_prompt(tokenizer, before: str, after: str, *, bos: bool = True,
                    chat: bool = False) -> tuple[TokenizedExample, str]:
    """[BOS] + `before` and `after` (the text around the audio) as tokens, and the text that
    must start the answer (the trailing space that `split_trailing_space` moved there).

    `chat`: a chat template's text. For tokenizers that add their own word boundary at every
    cut, the spaces at the cuts (before the audio, after it, before the answer) are left to the
    tokenizer, so that the pieces read as the template's text does; the paper's layout keeps the
    reference code's cuts whatever the tokenizer (`chat=False`)."""
    if chat and adds_prefix_space(tokenizer):
        before, after, answer_start = before.rstrip(" "), after.strip(" "), ""
    else:
        after, answer_start = split_trailing_space(tokenizer, after)
    bos = [tokenizer.bos_token_id] if bos and tokenizer.bos_token_id is not None else []
    return (TokenizedExample(before=bos + _encode(tokenizer, before),
                             after=_encode(tokenizer, after)), answer_start)


def tokenize_example(tokenizer, template: PromptTemplate, question: str | None = None,
                     target: str | None = None) -> TokenizedExample:
    """Tokenise one example; `target=None` gives the prompt alone (for generation)."""
    ids, answer_start = tokenize_prompt(tokenizer, *render(template, question), bos=template.bos,
                                        chat=template.is_chat)
    if target is not None:
        ids.target = _encode(tokenizer, answer_start + target + template.end)[:template.max_target_tokens]
    return ids


def sequence_layout(example: TokenizedExample, num_audio: int) -> tuple[list[int], list[int]]:
    """(input ids with -1 at audio positions, labels) for the whole sequence, unpadded.

    The model builds the same layout from embeddings; this list form is what tests and
    debugging print."""
    ids = example.before + [-1] * num_audio + example.after + example.target
    labels = [IGNORE] * (len(example.before) + num_audio + len(example.after)) + list(example.target)
    return ids, labels


def answer_from_generation(text: str, template: PromptTemplate) -> str:
    """The answer is the generated text before the first end symbol (reference behaviour)."""
    end = template.end.strip() or template.end
    return text.split(end)[0].strip() if end else text.strip()
