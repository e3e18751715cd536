"""The web app: caption and talk about a clip in the browser, with a run's model loaded once.

    musilingo serve --run runs/instruct                    # http://127.0.0.1:7860
    app = build_app(Predictor.load("runs/instruct"), RunCard.read("runs/instruct"))

One page (Gradio Blocks, fully offline: no CDN fonts, no analytics, no share link):
- the run's identity and recorded scores (`runs/card.py`) at the top;
- a clip from an uploaded file (any format the reader decodes) or the microphone, shown as a
  spectrogram with its length; with `--cache`, a clip of the cache chosen by its id instead;
- Caption: one caption per segment with its time span (a timeline table), or one over the whole
  track when it fits the LLM's context;
- Ask: a multi-turn chat about the clip, kept per browser session (`gr.State`);
- decoding: greedy, or the reference code's sampling.
Requests go through Gradio's queue one at a time (the model is shared), so concurrent users wait
their turn with a visible position instead of crashing it. A file that is not audio, is empty, or
is longer than `max_seconds` is answered in the page's status line.
"""
from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

from ..errors import UserError

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

DECODING_CHOICES = ("greedy", "reference sampling")


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


def check_clip(path: str | None, max_seconds: float):
    """(AudioInfo) of an uploaded file, or a UserError worded for the page."""
    from ..audio import AudioError, probe

    if not path:
        raise UserError("no clip yet: upload an audio file or record one with the microphone")
    name = Path(path).name
    try:
        info = probe(path)
    except AudioError as exc:
        raise UserError(f"{name} cannot be read as audio ({exc}); upload a WAV, FLAC, MP3 or "
                        "OGG file") from None
    if info.seconds <= 0:
        raise UserError(f"{name} holds no audio")
    if info.seconds > max_seconds:
        raise UserError(f"{name} is {info.seconds:.0f} s long; this server takes clips of at "
                        f"most {max_seconds:.0f} s (musilingo serve --max-seconds)")
    return info


def spectrogram_png(path: str, out_dir: str, seconds: float) -> str:
    """A log-magnitude spectrogram picture of the clip (first `seconds`), as a PNG file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..audio import load_audio

    sr = 16000
    wave = load_audio(path, sr, max_seconds=seconds)
    fig, ax = plt.subplots(figsize=(9, 2.4), dpi=100)
    ax.specgram(wave + 1e-9, NFFT=1024, Fs=sr, noverlap=768, cmap="magma")
    ax.set_xlabel("seconds")
    ax.set_ylabel("Hz")
    ax.set_xlim(0, max(len(wave) / sr, 1e-3))
    fig.tight_layout()
    out = Path(out_dir) / f"spectrogram-{abs(hash((path, os.path.getmtime(path))))}.png"
    fig.savefig(out)
    plt.close(fig)
    return str(out)


def timeline_html(rows: list[dict]) -> str:
    """The captions as a timeline table: one row per segment (or the whole track)."""
    import html

    body = "".join(
        f'<tr class="segment"><td class="span">{_clock(r["start"])}&ndash;{_clock(r["end"])}'
        f'</td><td class="scope">{r["scope"]}</td><td class="caption">'
        f'{html.escape(r["caption"]) or "<em>(empty caption)</em>"}</td></tr>' for r in rows)
    return ('<table id="timeline"><thead><tr><th>time</th><th>scope</th><th>caption</th></tr>'
            f"</thead><tbody>{body}</tbody></table>")


class Session:
    """Per-browser state: the clip heard and its ongoing conversation."""

    def __init__(self):
        self.path: str | None = None
        self.chat = None


def build_app(predictor, card, *, max_seconds: float = 600.0, title: str = "musilingo"):
    """The Gradio Blocks app over a loaded `Predictor` (the model is loaded once, here)."""
    import gradio as gr

    from ..infer.config import GenerationConfig

    pictures = tempfile.mkdtemp(prefix="musilingo-serve-")
    has_question = predictor.model.template.has_question
    cache = getattr(predictor.source, "cache", None)   # features from a cache: clips by id
    cache_clips = list(cache.clip_ids[:1000]) if cache is not None else []

    def predictor_for(decoding: str):
        p = copy.copy(predictor)  # shares the model and feature source; own decoding settings
        p.generation = (GenerationConfig.reference() if decoding == "reference sampling"
                        else predictor.generation)
        return p

    def clip_of(upload, mic) -> str | None:
        if upload:
            return upload if isinstance(upload, str) else getattr(upload, "name", None)
        return mic

    def load_clip(upload, mic, session: Session):
        session = session or Session()
        path = clip_of(upload, mic)
        if not path:
            return session, None, "Upload an audio file or record one.", "", []
        try:
            info = check_clip(path, max_seconds)
            picture = spectrogram_png(path, pictures, min(info.seconds, max_seconds))
        except UserError as exc:
            session.path, session.chat = None, None
            return session, None, f"**error:** {exc}", "", []
        session.path, session.chat = path, None
        return (session, picture, f"{Path(path).name}: {info.seconds:.1f} s, "
                f"{info.sample_rate} Hz, {info.channels} channel(s)", "", [])

    def caption(session: Session, whole: bool, decoding: str, progress=gr.Progress()):
        if session is None or session.path is None:
            return "**error:** no usable clip: upload an audio file first", ""
        progress(0.1, desc="encoding the clip and generating captions")
        try:
            rows = predictor_for(decoding).caption(session.path, whole_track=whole)
        except UserError as exc:
            return f"**error:** {exc}", ""
        return f"{len(rows)} caption(s)", timeline_html(rows)

    def ask(question: str, history: list, session: Session, decoding: str,
            progress=gr.Progress()):
        history = list(history or [])
        if session is None or session.path is None:
            return "**error:** no usable clip: upload an audio file first", history, ""
        if not has_question:
            return ("**error:** this run was trained for captioning only (stage 1); use "
                    "Caption", history, "")
        if not (question or "").strip():
            return "**error:** the question is empty", history, ""
        progress(0.1, desc="generating an answer")
        try:
            if session.chat is None:
                session.chat = predictor_for(decoding).chat(session.path)
            answer = session.chat.ask(question)
        except UserError as exc:
            return f"**error:** {exc}", history, question
        history += [{"role": "user", "content": question},
                    {"role": "assistant", "content": answer or "(empty answer)"}]
        return "answered", history, ""

    def pick_cached(clip_id: str | None, session: Session):
        session = session or Session()
        session.path, session.chat = (clip_id or None), None
        if not clip_id:
            return session, None, "Choose a clip of the cache.", "", []
        segs = cache.segments(clip_id)
        end = segs[-1].start + segs[-1].seconds if segs else 0.0
        return (session, None, f"cache clip {clip_id}: {len(segs)} segment(s), {end:.1f} s",
                "", [])

    def new_chat(session: Session):
        if session is not None:
            session.chat = None
        return [], "new conversation"

    theme = gr.themes.Default(font=["system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        session = gr.State(Session)
        gr.Markdown(f"# {title}: music captioning and Q&A\n\n" + card.markdown(),
                    elem_id="run-card")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="audio file", type="filepath", elem_id="upload",
                                 visible=cache is None)
                mic = gr.Audio(sources=["microphone"], type="filepath", format=None,
                               label="or record", elem_id="mic", visible=cache is None)
                cached = gr.Dropdown(cache_clips, label=f"clip of the cache (first "
                                     f"{len(cache_clips)})", elem_id="cached",
                                     visible=cache is not None)
                decoding = gr.Radio(list(DECODING_CHOICES), value="greedy", label="decoding",
                                    elem_id="decoding")
            with gr.Column(scale=2):
                picture = gr.Image(label="spectrogram", interactive=False, elem_id="picture")
                status = gr.Markdown("Upload an audio file or record one.", elem_id="status")
        with gr.Tab("Caption"):
            whole = gr.Checkbox(label="one caption for the whole track (when it fits)",
                                elem_id="whole")
            caption_button = gr.Button("Caption", variant="primary", elem_id="caption")
            timeline = gr.HTML(elem_id="timeline-box")
        with gr.Tab("Ask"):
            chatbot = gr.Chatbot(label="conversation about this clip", elem_id="chat")
            question = gr.Textbox(label="question", placeholder="What instrument is playing?",
                                  elem_id="question")
            with gr.Row():
                ask_button = gr.Button("Ask", variant="primary", elem_id="ask")
                reset = gr.Button("New conversation", elem_id="new-chat")
        outputs = [session, picture, status, timeline, chatbot]
        upload.change(load_clip, [upload, mic, session], outputs)
        mic.change(load_clip, [upload, mic, session], outputs)
        cached.change(pick_cached, [cached, session], outputs)
        caption_button.click(caption, [session, whole, decoding], [status, timeline])
        ask_button.click(ask, [question, chatbot, session, decoding], [status, chatbot, question])
        question.submit(ask, [question, chatbot, session, decoding], [status, chatbot, question])
        reset.click(new_chat, [session], [chatbot, status])
    app.queue(default_concurrency_limit=1, max_size=64)
    app.musilingo_theme = theme
    return app
