"""Inference end to end from raw audio with tiny models: API, CLI verbs, and refusals."""
from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from click.testing import CliRunner

from tests.helpers.runs import MAX_NEW, save_run
from musilingo.errors import UserError
from musilingo.infer import Predictor

SMALL = ["--max-new-tokens", str(MAX_NEW), "--batch-size", "4"]


def test_long_file_gets_a_caption_per_segment_with_its_time_span(predictor, audio_dir):
    rows = predictor.caption(audio_dir / "long.wav")
    assert [(r["start"], r["end"], r["scope"]) for r in rows] == \
        [(0.0, 30.0, "segment"), (30.0, 60.0, "segment"), (60.0, 65.0, "segment")]
    assert all(r["clip"] == str(audio_dir / "long.wav") and r["caption"] for r in rows)
    whole = predictor.caption(audio_dir / "long.wav", whole_track=True)
    assert [(r["start"], r["end"], r["scope"]) for r in whole] == [(0.0, 65.0, "track")]


def test_ask_answers_the_whole_track_or_per_segment_when_it_does_not_fit(predictor, audio_dir,
                                                                        monkeypatch):
    path = audio_dir / "long.wav"
    rows = predictor.ask(path, "What instrument is playing?")
    assert [(r["scope"], r["start"], r["end"]) for r in rows] == [("track", 0.0, 65.0)]
    assert rows[0]["question"] == "What instrument is playing?" and rows[0]["answer"]
    # 65 s at t = 325 frames is 7 + 7 + 2 = 16 audio tokens; leave room for 10 only.
    prompt_len = 1 + len(predictor.model.tokenizer("###Human: <Audio></Audio> What instrument is "
                                                   "playing? ###Assistant: ")["input_ids"])
    monkeypatch.setattr(predictor.model.llm.config, "max_position_embeddings",
                        prompt_len + MAX_NEW + 10)
    rows = predictor.ask(path, "What instrument is playing?")
    assert [r["scope"] for r in rows] == ["segment"] * 3
    with pytest.raises(UserError, match="question is empty"):
        predictor.ask(path, "  ")


def test_chat_keeps_the_conversation(predictor, audio_dir):
    chat = predictor.chat(audio_dir / "clips" / "yt_a.wav")
    first = chat.ask("What instrument is playing?")
    second = chat.ask("And the tempo?")
    assert chat.turns == [("What instrument is playing?", first), ("And the tempo?", second)]
    # The first turn is exactly the single-question prompt over the whole clip.
    assert first == predictor.ask(audio_dir / "clips" / "yt_a.wav",
                                  "What instrument is playing?")[0]["answer"]


def test_cache_features_give_the_same_answers_as_raw_audio(predictor, run_dir, cache_dir,
                                                          audio_dir):
    cached = Predictor(predictor.model, _cache_source(run_dir, cache_dir),
                       generation=predictor.generation, batch_size=4)
    from_cache = cached.caption(["yt_a", "yt_b"])
    from_audio = predictor.caption([audio_dir / "clips" / "yt_a.wav", audio_dir / "clips" / "yt_b.wav"])
    assert [r["caption"] for r in from_cache] == [r["caption"] for r in from_audio]
    assert [r["clip"] for r in from_cache] == ["yt_a", "yt_b"]


def _cache_source(run_dir, cache_dir):
    from musilingo.infer.predictor import open_source
    from musilingo.runs.adapter_file import read_config

    return open_source(read_config(run_dir), run_dir, cache=cache_dir)


def test_checkpoint_from_another_encoder_width_is_refused(tmp_path, tiny_encoder, cache_dir, audio_dir):
    narrow = save_run(tmp_path / "narrow", encoder_dim=64, num_layers=tiny_encoder.num_hidden_states,
                      encoder_meta={"encoder": "tiny"})
    with pytest.raises(UserError, match=r"expects features 64 wide .* encoder 'tiny' gives 128"):
        Predictor.load(narrow)
    with pytest.raises(UserError, match=r"expects features 64 wide .*clips.zarr gives 128"):
        Predictor.load(narrow, cache=cache_dir)
    layers = save_run(tmp_path / "layers", encoder_dim=128, num_layers=13,
                      encoder_meta={"encoder": "tiny"})
    with pytest.raises(UserError, match="expects 13 hidden states"):
        Predictor.load(layers)
    other = save_run(tmp_path / "other", encoder_dim=128, num_layers=tiny_encoder.num_hidden_states,
                     encoder_meta={"encoder": "tiny", "weights_sha256": "0123456789abcdef"})
    with pytest.raises(UserError, match="with other weights"):
        Predictor.load(other)
    with pytest.raises(UserError, match="has no adapter_config.json"):
        Predictor.load(tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "adapter_config.json").write_text("{not json")
    with pytest.raises(UserError, match="adapter_config.json: not valid JSON"):
        Predictor.load(tmp_path / "broken")


def test_a_cache_of_another_stride_is_re_pooled_from_its_own_stride(run_dir, cache_dir,
                                                                    audio_dir, tmp_path,
                                                                    tiny_encoder):
    """The run was trained on stride-65 features (t = 325). A stride-325 cache of the same clips
    is read at its own stride: the model re-pools by 1, not by 5, and hears the same windows.
    (Before, the check passed and the model re-pooled a stride-325 cache by 5.) A resampler,
    which learned on its trained stride's sub-windows, refuses another stride."""
    from musilingo.extract.job import ExtractConfig, run_extract
    from musilingo.extract.plan import clips_from_paths
    from musilingo.features import join_segments

    coarse = tmp_path / "coarse.zarr"
    clips = clips_from_paths(sorted((audio_dir / "clips").glob("*.wav")), root=audio_dir / "clips")
    run_extract(clips, ExtractConfig(out=str(coarse), stride=325, decode_workers=0,
                                     storage_dtype="float32", progress=False),
                {"name": "test"}, encoder=tiny_encoder, log=lambda *_: None)
    fine, wide = Predictor.load(run_dir, cache=cache_dir), Predictor.load(run_dir, cache=coarse)
    assert (fine.model.config.stride, fine.model.adapter.factor) == (65, 5)
    assert (wide.model.config.stride, wide.model.adapter.factor) == (325, 1)
    tokens = []
    for p in (fine, wide):
        f, c, _ = join_segments(p.segments("yt_a"), p.model.adapter.factor)
        x, counts = p.model.adapter.pooled(torch.as_tensor(f)[None], torch.as_tensor(c)[None])
        tokens.append(x[0][counts[0] > 0])
    assert tokens[0].shape == tokens[1].shape
    torch.testing.assert_close(tokens[0], tokens[1], rtol=1e-4, atol=1e-4)
    resampler = save_run(tmp_path / "resampler", encoder_dim=tiny_encoder.hidden_size,
                         num_layers=tiny_encoder.num_hidden_states, kind="resampler",
                         encoder_meta=dict(tiny_encoder.identity(), encoder="tiny"))
    with pytest.raises(UserError, match="a resampler adapter reads windows of the stride it was "
                                        r"trained on \(65\), but .*coarse.zarr has stride 325"):
        Predictor.load(resampler, cache=coarse)


def test_caption_cli_csv_over_a_folder_skips_unreadable_files(run_dir, audio_dir, tmp_path):
    from musilingo.infer.command import caption

    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("yt_a", "yt_b"):
        (folder / f"{name}.wav").write_bytes((audio_dir / "clips" / f"{name}.wav").read_bytes())
    (folder / "broken.wav").write_bytes(b"RIFF not really audio")
    out = tmp_path / "captions.csv"
    result = CliRunner().invoke(caption, ["--run", str(run_dir), str(folder), "--format", "csv",
                                          "--out", str(out), *SMALL])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["clip"].rsplit("/", 1)[1] for r in rows] == ["yt_a.wav", "yt_b.wav"]
    assert list(rows[0]) == ["clip", "start", "end", "scope", "caption"]
    assert rows[0]["start"] == "0.0" and rows[0]["end"] == "3.0"
    assert "warning: skipped" in result.output and "broken.wav" in result.output
    missing = CliRunner().invoke(caption, ["--run", str(run_dir), str(tmp_path / "nope.wav")])
    assert isinstance(missing.exception, UserError) and "nope.wav" in str(missing.exception)


def test_ask_and_chat_cli(run_dir, audio_dir):
    from musilingo.infer.command import ask, chat

    clip = str(audio_dir / "clips" / "yt_c.wav")
    result = CliRunner().invoke(ask, ["--run", str(run_dir), clip, "What instrument is playing?",
                                      *SMALL])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert (row["clip"], row["scope"], row["question"]) == (clip, "track",
                                                           "What instrument is playing?")
    # An empty line is no question and an undecodable one is skipped: neither ends the session,
    # and each input line gets its output line (empty for those two).
    result = CliRunner().invoke(chat, ["--run", str(run_dir), clip, "max_new_tokens=6"],
                                input=b"What instrument is playing?\nAnd the tempo?\n\n"
                                      b"caf\xe9 \xff?\nStill there?\n")
    assert result.exit_code == 0, result.output
    answers = result.stdout.splitlines()
    assert len(answers) == 5 and answers[0] == row["answer"]
    assert answers[2] == answers[3] == "" and answers[1] and answers[4]
    assert "stdin line 4 is not valid UTF-8" in result.stderr
    # chat answers one line at a time: it offers no batch size
    assert "--batch-size" not in CliRunner().invoke(chat, ["--help"]).output


def test_a_caption_run_says_how_far_it_is(run_dir, audio_dir):
    """Before: a long file was captioned for minutes with nothing on stderr."""
    lines: list[str] = []
    p = Predictor.load(run_dir, log=lines.append)
    p.generation.max_new_tokens = MAX_NEW
    p.batch_size = 2
    rows = p.caption(audio_dir / "long.wav")
    assert len(rows) == 3
    said = [ln for ln in lines if ln.startswith("caption: ")]
    # after the first batch at once, then at most every 10 s: the first line is the first batch
    assert said and said[0].startswith("caption: 2 captions, ") and "captions/s" in said[0]
    lines.clear()
    p.ask(audio_dir / "long.wav", "What instrument is playing?")
    assert any(ln.startswith("generate: 1/1 answers") for ln in lines), lines


def test_a_slow_encoder_pass_is_reported(audio_dir):
    from musilingo.infer.items import Progress, listened

    lines: list[str] = []
    listened(lines.append, "long.wav", [type("S", (), {"seconds": 30.0})()] * 3, seconds=6.2)
    listened(lines.append, "short.wav", [], seconds=0.1)
    assert lines == ["listened to long.wav: 3 segments (90 s of audio) in 6 s"]
    progress = Progress(5, lines.append, "generate", every=3600)
    progress.add(1)                  # the first batch: said at once
    progress.add(1)                  # within `every`: quiet
    progress.add(3)                  # the end: said
    assert [ln.split(",")[0] for ln in lines[1:]] == ["generate: 1/5 items", "generate: 5/5 items"]
