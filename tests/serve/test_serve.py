"""`musilingo serve` in a real browser, and `musilingo export` loaded back.

The app runs on a free loopback port in this process (Gradio's own server, the real queue);
Playwright drives Debian's Chromium (`/usr/bin/chromium`, installed by scripts/install.sh) over
it with the tiny run of the inference tests: upload a real recording, caption it and read the
time spans from the page, ask two questions in one conversation, upload a text file and read the
error. Screenshots go to $MUSILINGO_SCREENSHOTS when it is set (the README's picture).
"""
from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infer"))
from tests.helpers.runs import MAX_NEW, save_run  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from musilingo.models.encoders.hubert import FrozenEncoder

    encoder = FrozenEncoder.load("tiny")
    meta = dict(encoder.identity(), encoder="tiny")
    return save_run(tmp_path_factory.mktemp("serve") / "run", encoder_dim=encoder.hidden_size,
                    num_layers=encoder.num_hidden_states, encoder_meta=meta)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_uploads_that_are_not_usable_audio_get_a_message(tmp_path):
    import numpy as np
    import soundfile as sf

    from musilingo.errors import UserError
    from musilingo.serve.app import check_clip

    text = tmp_path / "notes.txt"
    text.write_text("not music")
    with pytest.raises(UserError, match="notes.txt cannot be read as audio"):
        check_clip(str(text), 600)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty.wav cannot be read as audio"):
        check_clip(str(empty), 600)
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(16000 * 20, np.float32), 16000)
    with pytest.raises(UserError, match="long.wav is 20 s long; this server takes clips of at most 10 s"):
        check_clip(str(long), 10)
    assert check_clip(str(long), 30).seconds == 20


@pytest.fixture(scope="module")
def app_url(tiny_run):
    from musilingo.infer import GenerationConfig, Predictor
    from musilingo.runs.card import RunCard, record_evaluation
    from musilingo.serve.app import build_app

    record_evaluation(tiny_run, {"dataset": "musiccaps", "kind": "generated test split",
                                 "source": "eval/mc", "protocols": {"musilingo": {"B-U": 0.25}},
                                 "control": [{"protocol": "musilingo", "metric": "B-U",
                                              "real": 0.25, "shuffled": 0.20, "delta": 0.05}]})
    predictor = Predictor.load(tiny_run, generation=GenerationConfig(max_new_tokens=MAX_NEW))
    app = build_app(predictor, RunCard.read(tiny_run), max_seconds=120)
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
               share=False, ssr_mode=False, quiet=True, theme=app.musilingo_theme)
    yield f"http://127.0.0.1:{port}/", predictor
    app.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        msg = (f"Chromium is not installed here ({CHROMIUM}); scripts/install.sh installs it "
               "with apt-get install chromium when run as root")
        if os.environ.get("CI"):  # CI must run the browser tests, not skip them
            pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def shot(page, name: str) -> None:
    folder = os.environ.get("MUSILINGO_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


@pytest.mark.slow
def test_the_app_captions_answers_and_refuses_in_a_browser(app_url, browser, shared_data,
                                                          tmp_path):
    url, predictor = app_url
    song = shared_data / "audio" / "lp-music-caps-samples" / "electronic.mp3"
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url)
    page.wait_for_selector("#run-card")
    card = page.inner_text("#run-card")
    assert "LLM tiny-llama" in card and "encoder tiny" in card and "stage 2" in card
    assert "musiccaps" in card and "+0.0500" in card        # recorded score with its control

    page.locator("#upload input[type=file]").set_input_files(str(song))
    page.wait_for_function("document.querySelector('#status').innerText.includes('electronic.mp3:')")
    assert "electronic.mp3: 59.9 s, 22050 Hz, 2 channel(s)" in page.inner_text("#status")
    page.wait_for_selector("#picture img")                   # the spectrogram
    page.click("#caption")
    page.wait_for_selector("#timeline tr.segment")
    spans = page.locator("#timeline td.span").all_inner_texts()
    captions = page.locator("#timeline td.caption").all_inner_texts()
    assert spans == ["0:00\u20130:30", "0:30\u20131:00"]
    expected = [r["caption"] for r in predictor.caption(str(song))]
    assert [c.strip() for c in captions] == [e.strip() or "(empty caption)" for e in expected]
    shot(page, "serve-caption.png")

    page.get_by_role("tab", name="Ask").click()
    for question in ("What instrument is playing?", "And the tempo?"):
        page.fill("#question textarea", question)
        page.click("#ask")
        page.wait_for_function(
            f"document.querySelector('#chat').innerText.includes({question!r})")
        page.wait_for_function("document.querySelector('#status').innerText.includes('answered')")
    chat = page.inner_text("#chat")
    assert chat.index("What instrument is playing?") < chat.index("And the tempo?")
    direct = predictor.chat(str(song))
    first = direct.ask("What instrument is playing?")
    assert (first.strip() or "(empty answer)") in chat      # the same model, the same answer
    shot(page, "serve-chat.png")

    text = tmp_path / "notes.txt"
    text.write_text("this is not music")
    page.locator("#upload button[aria-label='Clear']").click()   # the file box's x
    page.locator("#upload input[type=file]").set_input_files(str(text))
    page.wait_for_function("document.querySelector('#status').innerText.includes('error')")
    assert "notes.txt cannot be read as audio" in page.inner_text("#status")
    page.get_by_role("tab", name="Caption").click()
    page.click("#caption")
    page.wait_for_function("document.querySelector('#status').innerText.includes('no usable clip')")
    page.close()


def run_cli(capsys, *argv) -> tuple[int, str]:
    from tests.helpers.cli import run_cli as run

    code, out, err = run(capsys, *argv)
    return code, out + err


@pytest.mark.slow
def test_the_app_on_a_cache_picks_clips_by_id(tiny_run, browser, tmp_path):
    """serve --cache: no upload, a clip of the cache chosen by id, captioned from its rows."""
    import soundfile as sf

    from tests.helpers.runs import tone
    from musilingo.data import read_dataset
    from musilingo.extract.job import ExtractConfig, run_extract
    from musilingo.extract.plan import clip_list
    from musilingo.infer import GenerationConfig, Predictor
    from musilingo.runs.card import RunCard
    from musilingo.serve.app import build_app

    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(3):
        sf.write(audio / f"clip{i}.wav", tone(3.0, 24000, 200.0 + 90 * i, i), 24000)
    cache = tmp_path / "clips.zarr"
    run_extract(clip_list(read_dataset("folder", None, audio)),
                ExtractConfig(out=str(cache), stride=65, decode_workers=0, progress=False),
                {"name": "folder"}, log=lambda *_: None)
    predictor = Predictor.load(tiny_run, cache=cache,
                               generation=GenerationConfig(max_new_tokens=MAX_NEW))
    app = build_app(predictor, RunCard.read(tiny_run))
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
               share=False, ssr_mode=False, quiet=True, theme=app.musilingo_theme)
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#cached")
        assert page.locator("#upload").count() == 0 or not page.locator("#upload").is_visible()
        page.locator("#cached input").click()
        page.get_by_role("option", name="clip1").click()
        page.wait_for_function("document.querySelector('#status').innerText.includes('clip1')")
        assert "cache clip clip1: 1 segment(s), 3.0 s" in page.inner_text("#status")
        page.click("#caption")
        page.wait_for_selector("#timeline tr.segment")
        got = page.locator("#timeline td.caption").all_inner_texts()
        want = [r["caption"].strip() or "(empty caption)" for r in predictor.caption(["clip1"])]
        assert [g.strip() for g in got] == want
        page.close()
    finally:
        app.close()


def test_export_round_trips_and_its_card_names_the_protocol(tiny_run, tmp_path, audio_clip,
                                                            capsys, monkeypatch):
    from musilingo.infer import GenerationConfig, Predictor
    from musilingo.runs.card import record_evaluation

    record_evaluation(tiny_run, {"dataset": "musicqa", "kind": "generated test split",
                                 "source": "eval/qa", "protocols": {"lp-musiccaps":
                                                                    {"BLEU-1": 0.31}},
                                 "control": [{"protocol": "lp-musiccaps", "metric": "BLEU-1",
                                              "real": 0.31, "shuffled": 0.30, "delta": 0.01}]})
    out = tmp_path / "hub"
    code, text = run_cli(capsys, "export", str(tiny_run), "--out", str(out))
    assert code == 0, text
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: null\n") and "library_name: musilingo" in card
    assert "protocol `lp-musiccaps`" in card and "| BLEU-1 | 0.3100 | 0.3000 | +0.0100 |" in card
    assert 'Predictor.load("<this folder or repo snapshot>")' in card
    assert "shuffled-audio control" in card
    gen = GenerationConfig(max_new_tokens=MAX_NEW)
    again = Predictor.load(out, generation=gen).caption(str(audio_clip))
    assert again == Predictor.load(tiny_run, generation=gen).caption(str(audio_clip))
    code, text = run_cli(capsys, "export", str(tiny_run), "--out", str(out))
    assert code == 2 and "is not empty" in text
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))       # no stored login
    code, text = run_cli(capsys, "export", str(tiny_run), "--out", str(tmp_path / "hub2"),
                         "--push-to-hub", "someone/musilingo-test")
    assert code == 2 and "error: --push-to-hub" in text and len(text.strip().splitlines()) == 2
    assert (tmp_path / "hub2" / "adapter.safetensors").is_file()   # exported before the push


@pytest.fixture()
def audio_clip(tmp_path):
    import soundfile as sf

    from tests.helpers.runs import tone

    path = tmp_path / "clip.wav"
    sf.write(path, tone(4.0, 24000, 330.0, 3), 24000)
    return path
