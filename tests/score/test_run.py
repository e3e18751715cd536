"""`score --run --dataset`: test-split items, resumable predictions, scores, shuffled-audio control."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.runs import CLIPS, MAX_NEW
from musilingo.errors import UserError
from musilingo.data.items import WORKED_EXAMPLE, MCQLayout
from musilingo.infer import GenerationConfig
from musilingo.score import run as ed
from musilingo.score.controls import CONTROL_TITLES, distinct_fraction
from musilingo.infer.items import Item, derangement, shuffled_audio

GEN = GenerationConfig(max_new_tokens=MAX_NEW)


def score(*, generation=GEN, log=lambda m: None, **kw):
    """`score --run` as the verb runs it: one validated ScoreConfig (BLEU and ROUGE only,
    3 answers a batch, a few new tokens), then `score_run`."""
    from musilingo.score.config import ScoreConfig

    values = dict(metrics="bleu,rouge", batch_size=3, **generation.to_dict())
    values.update({k: str(v) if isinstance(v, Path) else v for k, v in kw.items()})
    return ed.score_run(ScoreConfig(**values).validate(), log=log)


@pytest.fixture()
def musiccaps(tmp_path, audio_dir):
    path = tmp_path / "musiccaps-public.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ytid", "start_s", "end_s", "caption", "is_audioset_eval"])
        for i, name in enumerate(CLIPS):
            w.writerow([name, 0, 10, f"A {['calm', 'loud', 'slow', 'fast'][i]} piano piece.", "True"])
        w.writerow(["yt_train", 0, 10, "A training caption.", "False"])
        w.writerow(["yt_absent", 0, 10, "Its audio was never downloaded.", "True"])
    return path


def _count_generated(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = ed.generate_for_items

    def counting(model, items, *args, **kw):
        calls.append(len(items))
        return real(model, items, *args, **kw)

    monkeypatch.setattr(ed, "generate_for_items", counting)
    return calls


def test_generate_score_and_shuffled_control(run_dir, musiccaps, audio_dir, tmp_path):
    out = tmp_path / "eval"
    logs: list[str] = []
    result = score(run=run_dir, dataset="musiccaps", annotations=musiccaps,
                   audio_root=audio_dir / "clips", out=out,
                   control="shuffled-audio", log=logs.append)
    assert any("4 test items over 4 clips; 1 skipped" in m for m in logs)
    real = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in real) == [f"{c}:0" for c in CLIPS]
    assert all(r["question"] == "Please give a caption to the music." for r in real)
    assert all(r["audio_clip"] == r["clip_id"] for r in real)
    shuffled = [json.loads(x) for x in
                (out / "predictions.shuffled-audio.jsonl").read_text().splitlines()]
    assert all(r["audio_clip"] != r["clip_id"] for r in shuffled)
    assert sorted(r["audio_clip"] for r in shuffled) == sorted(CLIPS)
    # The scores are those of the written predictions, and the deltas are real - shuffled.
    assert json.loads((out / "scores.json").read_text())["reports"][0]["n_items"] == 4
    rows = json.loads((out / "control.json").read_text())
    bu = next(r for r in rows if r["protocol"] == "musilingo" and r["metric"] == "B-U")
    assert bu["delta"] == pytest.approx(bu["real"] - bu["shuffled"])
    assert bu["real"] == result["real"]["reports"][0]["values"]["B-U"]
    assert "| B-U |" in (out / "control.md").read_text()
    assert (out / "shuffled-audio" / "scores.json").is_file()
    # The same run again generates nothing and gives the same scores.
    again = score(run=run_dir, dataset="musiccaps", annotations=musiccaps,
                  audio_root=audio_dir / "clips", out=out,
                  control="shuffled-audio")
    assert again["control"] == result["control"]


def test_resume_after_a_kill_and_refusals(run_dir, musiccaps, audio_dir, tmp_path, monkeypatch):
    out = tmp_path / "eval"
    args = dict(run=run_dir, dataset="musiccaps", annotations=musiccaps,
                audio_root=audio_dir / "clips", out=out)
    score(**args, max_items=3)
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 3
    # Killed mid-write: one complete line kept, a half-written one after it.
    (out / "predictions.jsonl").write_text(lines[0] + "\n" + lines[1][:20])
    calls = _count_generated(monkeypatch)
    score(**args)
    assert calls == [3]   # 4 items, 1 already written
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 4
    with pytest.raises(UserError, match="other settings \\(generation differ"):
        score(**args, generation=GenerationConfig(max_new_tokens=3))
    (out / "predictions.jsonl").write_text(lines[0] + "\n{not json\n")
    with pytest.raises(UserError, match=r"predictions.jsonl:2: not valid JSON"):
        score(**args)
    (out / "predictions.jsonl").write_text('{"id": "yt_a:0"}\n')
    with pytest.raises(UserError, match=r"predictions.jsonl:1: field 'prediction' is missing"):
        score(**args)
    with pytest.raises(UserError, match="needs --out"):
        score(**dict(args, out=None))
    with pytest.raises(UserError, match="--dataset 'musiccap'"):
        score(**dict(args, dataset="musiccap"))


def test_question_answer_items_from_a_cache(run_dir, cache_dir, tmp_path, monkeypatch):
    qa = [{"ytid": "yt_a", "question": "What instrument?", "answer": "A piano.",
           "is_audioset_eval": True},
          {"ytid": "yt_a", "question": "Tempo?", "answer": "Slow.", "is_audioset_eval": True},
          {"ytid": "yt_b", "question": "Mood?", "answer": "Calm.", "is_audioset_eval": "True"},
          {"ytid": "yt_b", "question": "Mood?", "answer": "Calm.", "is_audioset_eval": False},
          {"ytid": "not_cached", "question": "Key?", "answer": "C.", "is_audioset_eval": True}]
    path = tmp_path / "music_instruct_short.json"
    path.write_text(json.dumps({"QA": qa}))
    items, _ = ed.dataset_items("musicinstruct", path,
                                available=lambda r: r.clip_id != "not_cached")
    assert [(i.id, i.question, i.answer) for i in items] == [
        ("yt_a:0", "What instrument?", "A piano."), ("yt_a:1", "Tempo?", "Slow."),
        ("yt_b:0", "Mood?", "Calm.")]
    with pytest.raises(UserError, match="trained for captioning only"):
        ed.dataset_items("musicinstruct", path, has_question=False)
    out = tmp_path / "eval"
    score(run=run_dir, dataset="musicinstruct", annotations=path,
          cache=cache_dir, out=out)
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["yt_a:0", "yt_a:1", "yt_b:0"]


def test_one_generation_per_clip_and_question(run_dir, audio_dir, tmp_path, monkeypatch):
    """Song Describer has several captions per track: the track is captioned once."""
    path = tmp_path / "song_describer.csv"
    path.write_text("caption_id,track_id,caption,path\n1,yt_a,A calm piece.,yt_a.wav\n"
                    "2,yt_a,Soft piano.,yt_a.wav\n3,yt_b,Loud drums.,yt_b.wav\n")
    calls = _count_generated(monkeypatch)
    out = tmp_path / "eval"
    score(run=run_dir, dataset="songdescriber", annotations=path,
          audio_root=audio_dir / "clips", out=out)
    assert calls == [2]
    rows = {json.loads(x)["id"]: json.loads(x) for x in
            (out / "predictions.jsonl").read_text().splitlines()}
    assert rows["yt_a:0"]["prediction"] == rows["yt_a:1"]["prediction"]
    assert (rows["yt_a:0"]["reference"], rows["yt_a:1"]["reference"]) == ("A calm piece.",
                                                                          "Soft piano.")


def test_musicqa_needs_its_eval_file(tmp_path):
    path = tmp_path / "FinetuneMusicQA.json"
    path.write_text(json.dumps([{"audio_name": "a.wav", "conversation": [
        {"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}]))
    with pytest.raises(UserError, match="no test-split records .*Eval file"):
        ed.dataset_items("musicqa", path)


def test_derangement_has_no_fixed_point_and_is_seeded():
    for n in range(2, 40):
        p = derangement(n, seed=n)
        assert sorted(p.tolist()) == list(range(n))
        assert not np.any(p == np.arange(n))
    assert derangement(10, 3).tolist() == derangement(10, 3).tolist()
    assert derangement(10, 3).tolist() != derangement(10, 4).tolist()
    with pytest.raises(UserError, match="at least 2 distinct clips"):
        derangement(1)
    items = [Item(f"{c}:{k}", c, f"q{k}") for c in "abc" for k in range(3)]
    swapped = shuffled_audio(items, seed=0)
    assert all(s.heard != s.clip_id for s in swapped)
    # All questions about one clip hear the same other clip; each clip's audio is used once.
    heard = {s.clip_id: s.heard for s in swapped}
    assert all(s.heard == heard[s.clip_id] for s in swapped)
    assert sorted(heard.values()) == ["a", "b", "c"]


def test_score_command_generation_mode(run_dir, musiccaps, audio_dir, tmp_path):
    from click.testing import CliRunner

    from musilingo.score.command import score

    out = tmp_path / "eval"
    args = ["--run", str(run_dir), "--dataset", "musiccaps", "--annotations", str(musiccaps),
            "--audio-root", str(audio_dir / "clips"), "--out", str(out), "--max-items", "3",
            "--control", "shuffled-audio", "--metrics", "bleu,rouge", "--protocol", "musilingo",
            "--max-new-tokens", str(MAX_NEW), "--batch-size", "2"]
    result = CliRunner().invoke(score, args)
    assert result.exit_code == 0, result.output
    assert "### Protocol `musilingo`: 3 items" in result.stdout
    assert "## Grounding control: shuffled audio" in result.stdout
    assert "| B-U |" in result.stdout and "generating 3 answers for 3 items" in result.stderr
    # The predictions file is itself a valid --predictions input.
    rescored = CliRunner().invoke(score, ["--predictions", str(out / "predictions.jsonl"),
                                          "--metrics", "bleu,rouge", "--protocol", "musilingo"])
    assert rescored.exit_code == 0, rescored.output
    saved = json.loads((out / "scores.json").read_text())["reports"][0]["values"]["B-U"]
    assert f"{saved:.4f}" in rescored.stdout
    both = CliRunner().invoke(score, ["--predictions", str(out / "predictions.jsonl"), *args])
    assert isinstance(both.exception, UserError) and "not both" in str(both.exception)
    neither = CliRunner().invoke(score, [])
    assert isinstance(neither.exception, UserError) and "--predictions FILE" in str(neither.exception)
    no_set = CliRunner().invoke(score, ["--run", str(run_dir), "--out", str(out)])
    assert isinstance(no_set.exception, UserError) and "needs --dataset" in str(no_set.exception)


def test_max_items_counts_clips_with_the_control_and_checks_it_first(run_dir, audio_dir, tmp_path,
                                                                  monkeypatch):
    """MusicQA-like sets ask several questions per clip: `--max-items 2` with the control keeps every
    item of the first 2 clips, and a control that cannot run fails before anything is generated."""
    qa = [{"audio_name": f"{c}.wav", "conversation": [{"from": "human", "value": q},
                                                       {"from": "gpt", "value": "A piano."}]}
          for c in CLIPS for q in ("What instrument?", "What tempo?", "What mood?")]
    path = tmp_path / "EvalMusicQA.json"
    path.write_text(json.dumps(qa))
    logs: list[str] = []
    args = dict(run=run_dir, dataset="musicqa", annotations=path, audio_root=audio_dir / "clips",
                control="shuffled-audio")
    result = score(**args, out=tmp_path / "two", max_items=2,
                   log=logs.append)
    assert result["real"]["reports"][0]["n_items"] == 6
    assert any("--max-items 2: the first 2 clips (6 items; with --control, --max-items counts "
               "clips)" in m for m in logs)
    calls = _count_generated(monkeypatch)
    with pytest.raises(UserError, match="needs at least 2 distinct clips"):
        score(**args, out=tmp_path / "one", max_items=1)
    assert calls == [] and not (tmp_path / "one" / "predictions.jsonl").exists()


def test_empty_generations_are_counted_and_reported(run_dir, musiccaps, audio_dir, tmp_path,
                                                     monkeypatch):
    monkeypatch.setattr(ed, "generate_pass", lambda model, items, *a, **k: [" "] * len(items))
    logs: list[str] = []
    result = score(run=run_dir, dataset="musiccaps", annotations=musiccaps,
                   audio_root=audio_dir / "clips", out=tmp_path / "e",
                   log=logs.append)
    assert result["real"]["empty_predictions"] == 4
    assert "4 of 4 predictions are empty" in result["markdown"]
    assert any("warning: 4 of 4 generations for musiccaps are empty" in m for m in logs)
    settings = json.loads((tmp_path / "e" / "generation.json").read_text())
    assert settings["annotations"] == str(musiccaps.absolute())   # the full path, not a basename


def _muchomusic_csv(path, rows):
    columns = ["question", "correct_answer", "distractor_1_answer", "distractor_2_answer",
               "distractor_3_answer", "dataset", "dataset_identifier", "genre"]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow(r)
    return path


def test_multiple_choice_items_scores_and_control(run_dir, audio_dir, tmp_path):
    """MuChoMusic's CSV: the prompt lists the four options in a seeded order, the reply is read
    by the benchmark's rule, accuracy and the answered rate are reported with the control."""
    rows = [[f"What leads in clip {c}?", "A piano", "A violin", "Drums", "A choir", "musiccaps",
             f"{c}_{k}.json", "pop"] for c in CLIPS for k in range(2)]
    path = _muchomusic_csv(tmp_path / "muchomusic.csv", rows)
    items, _ = ed.dataset_items("muchomusic", path, audio_dir / "clips", mcq=MCQLayout(seed=5))
    assert len(items) == 8 and items[0].id == "yt_a:0" and items[1].id == "yt_a:1"
    first = items[0]
    assert first.question.startswith(WORKED_EXAMPLE + "\n Question: What leads in clip yt_a?\n "
                                     "Options: (A) ")  # the published 1-shot layout
    assert first.question.endswith("\n The correct answer is: ")
    assert sorted(first.meta["options"]) == ["A choir", "A piano", "A violin", "Drums"]
    assert first.meta["options"][first.meta["correct"]] == "A piano"
    assert first.answer == f"({'ABCD'[first.meta['correct']]}) A piano"
    assert (first.meta["genre"], first.meta["dataset"]) == ("pop", "musiccaps")  # categories
    again, _ = ed.dataset_items("muchomusic", path, audio_dir / "clips", mcq=MCQLayout(seed=5))
    assert [i.question for i in again] == [i.question for i in items]
    other, _ = ed.dataset_items("muchomusic", path, audio_dir / "clips", mcq=MCQLayout(seed=6))
    assert [i.question for i in other] != [i.question for i in items]

    out = tmp_path / "mcq"
    result = score(run=run_dir, dataset="muchomusic", annotations=path,
                   audio_root=audio_dir / "clips", out=out,
                   control="shuffled-audio", options_seed=5)
    real = result["real"]
    assert real["reports"][0]["protocol"] == "muchomusic"
    preds = [json.loads(x)["prediction"] for x in (out / "predictions.jsonl").read_text()
             .splitlines()]
    from musilingo.evaluate.mcq import read_choice

    choices = [read_choice(p, it.meta["options"]) for p, it in zip(preds, items)]
    right = sum(c == it.meta["correct"] for c, it in zip(choices, items))
    assert real["reports"][0]["values"] == {"accuracy": right / 8,
                                            "answered_rate": sum(c >= 0 for c in choices) / 8}
    assert {r["metric"] for r in result["control"]} == {"accuracy", "answered_rate"}
    assert 0 < result["distinct"] <= 1 and "distinct generations" in result["markdown"]
    saved = json.loads((out / "scores.json").read_text())
    assert saved["counts"]["questions"] == 8 and saved["counts"]["chance"] == 0.25
    card = json.loads((run_dir / "evaluations.json").read_text())
    assert card[-1]["dataset"] == "muchomusic" and card[-1]["options_seed"] == 5
    assert card[-1]["protocol_name"].startswith("MuChoMusic, 1-shot, 4 options")
    assert saved["breakdown"]["genre"]["pop"]["questions"] == 8
    # The benchmark's exchange file, for the real pass and the control, reads back the same.
    from musilingo.evaluate.mcq_exchange import read_mcq_file

    questions, replies, _ = read_mcq_file(out / "muchomusic.json")
    assert replies == preds and [q.correct for q in questions] == [
        it.meta["correct"] for it in items]
    assert (out / "shuffled-audio" / "muchomusic.json").is_file()
    assert (out / "categories.png").read_bytes()[:4] == b"\x89PNG"
    assert "1-shot" in (out / "scores.md").read_text()
    # A 0-shot rerun into the same folder would mix layouts: refused.
    with pytest.raises(UserError, match="mcq"):
        score(run=run_dir, dataset="muchomusic", annotations=path,
              audio_root=audio_dir / "clips", out=out, options_seed=5, shots=0)


def test_a_multiple_choice_row_without_four_options_is_refused(tmp_path):
    path = _muchomusic_csv(tmp_path / "m.csv", [
        ["Q?", "A piano", "A violin", "A violin", "Drums", "musiccaps", "yt_a_0.json", ""]])
    with pytest.raises(UserError, match=r"m.csv:2: the answer and its three distractors are not "
                                        "four different options"):
        ed.dataset_items("muchomusic", path, tmp_path)
    path.write_text("question,correct_answer,distractor_1_answer\nQ?,a,b\n")
    with pytest.raises(UserError, match="distractor_2_answer"):
        ed.dataset_items("muchomusic", path, tmp_path)


def test_distinct_generations_measure_whether_answers_depend_on_the_audio():
    items = [Item(f"{c}:0", c, "Q?") for c in "abcd"] + [Item(f"{c}:1", c, "R?") for c in "abcd"]
    assert distinct_fraction(items, ["x"] * 8) == 2 / 8          # one text per question
    assert distinct_fraction(items, list("abcdefgh")) == 1.0
    assert distinct_fraction(items, ["x", "x", "y", "y"] + list("efgh")) == 6 / 8


def test_silence_noise_and_text_only_controls_from_a_cache(run_dir, cache_dir, tmp_path):
    """Every item hears one silent (or noise) clip, encoded by the run's encoder even when the
    features come from a cache, or no audio token at all (text only); each control gets its
    table and its delta rows."""
    qa = [{"audio_name": f"{c}.wav", "conversation": [{"from": "human", "value": "What plays?"},
                                                       {"from": "gpt", "value": "A piano."}]}
          for c in CLIPS]
    path = tmp_path / "EvalMusicQA.json"
    path.write_text(json.dumps(qa))
    out = tmp_path / "controls"
    result = score(run=run_dir, dataset="musicqa", annotations=path, cache=cache_dir, out=out,
                   control="silence,noise,shuffled-audio,text-only")
    assert {r.get("control", "shuffled-audio") for r in result["control"]} == \
        {"silence", "noise", "shuffled-audio", "text-only"}
    for name in ("silence", "noise", "text-only"):
        rows = [json.loads(x) for x in (out / f"predictions.{name}.jsonl").read_text()
                .splitlines()]
        assert {r["audio_clip"] for r in rows} == {f"__{name}__"} and len(rows) == 4
        assert (out / name / "scores.json").is_file()
        title = CONTROL_TITLES[name][0]
        assert f"## Grounding control: {title}" in (out / "control.md").read_text()
    for name in ("silence", "text-only"):       # one question, one heard clip: one answer
        heard = [json.loads(x)["prediction"] for x in
                 (out / f"predictions.{name}.jsonl").read_text().splitlines()]
        assert len(set(heard)) == 1
    # The text-only clip gives the prompt no audio token at all.
    from musilingo.features import join_segments
    from musilingo.infer.generation import audio_tokens
    from musilingo.score.controls import TEXT_ONLY, text_only_features

    (segment,) = text_only_features(3, 128)[TEXT_ONLY]
    features, counts, _ = join_segments([segment], 5)
    assert features.shape == (3, 0, 128) and audio_tokens(counts, 5) == 0
    with pytest.raises(UserError, match="'loud' is not one of"):
        from musilingo.score.config import ScoreConfig

        ScoreConfig(run="r", dataset="musicqa", control="silence,loud").validate()


def test_rul_muchomusic_leave_one_out_with_the_noise_run(run_dir, audio_dir, tmp_path):
    """RUL-MuChoMusic through `score`: four passes per question in the release's prompt, the
    vote recomputed from the written predictions equals the reported accuracy, and the noise
    control (the release's recommended second run) is reported beside it under the protocol's
    name."""
    from musilingo.evaluate.rul import read_rul_letter, vote

    path = tmp_path / "RUL-MuchoMusic.json"
    path.write_text(json.dumps({c: {"question": f"What leads in {c}?", "caption": "...",
                                    "correct_answer": "A piano", "PI": 0.9,
                                    "distractors": ["A violin", "Drums", "A choir", "A flute"]}
                                for c in CLIPS}))
    out = tmp_path / "rul"
    result = score(run=run_dir, dataset="rul-muchomusic", annotations=path,
                   audio_root=audio_dir / "clips", out=out, control="noise")
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 * len(CLIPS)
    assert rows[0]["question"].startswith("Provide your best guess of this question.")
    items, _ = ed.dataset_items("rul-muchomusic", path, audio_dir / "clips")
    assert [r["id"] for r in rows] == [it.id for it in items]
    right = 0
    for c in CLIPS:
        mine = [(r, it) for r, it in zip(rows, items) if it.meta["question"] == f"{c}:0"]
        texts = [(lambda letter: it.meta["options"]["ABCD".index(letter)] if letter else "")(
            read_rul_letter(r["prediction"], it.meta["options"])) for r, it in mine]
        right += vote(texts) == "A piano"
    real = result["real"]["reports"][0]
    assert real["protocol"] == "rul-muchomusic"
    assert real["values"]["accuracy"] == right / len(CLIPS)
    assert "RUL-MuChoMusic, leave-one-out" in (out / "scores.md").read_text()
    assert "RUL-MuChoMusic, leave-one-out" in (out / "control.md").read_text()
    card = json.loads((run_dir / "evaluations.json").read_text())
    assert card[-1]["protocol_name"].startswith("RUL-MuChoMusic, leave-one-out")


def test_items_left_out_are_counted_with_their_reason(audio_dir, tmp_path):
    """No silent drops: audio outside the audio root and absent files are each counted in the
    log line; when every item points outside, the error says so (not "no test-split records")."""
    rows = [[f"What leads in clip {c}?", "A piano", "A violin", "Drums", "A choir", "musiccaps",
             f"{c}_0.json", "pop"] for c in CLIPS]
    path = _muchomusic_csv(tmp_path / "m.csv", rows)
    lines = []
    with_paths = tmp_path / "p.csv"
    text = path.read_text().splitlines()
    with_paths.write_text("\n".join([text[0] + ",audio_path"] + [
        row + ("," + ("../../etc/x.wav" if i == 0 else f"{CLIPS[i]}.wav" if i < 3 else
                      "absent.wav")) for i, row in enumerate(text[1:])]) + "\n")
    items, _ = ed.dataset_items("muchomusic", with_paths, audio_dir / "clips", log=lines.append)
    assert len(items) == 2
    assert "2 test items over 2 clips; 1 skipped (no audio file); 1 skipped (audio outside the " \
           "audio root" in lines[0]
    everything_out = tmp_path / "out.csv"
    everything_out.write_text("\n".join([text[0] + ",audio_path"] +
                                        [row + ",/etc/x.wav" for row in text[1:]]) + "\n")
    with pytest.raises(UserError, match="all 4 test items name audio outside the audio root"):
        ed.dataset_items("muchomusic", everything_out, audio_dir / "clips")
