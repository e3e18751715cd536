"""Each synthetic attribute is measurably present in the signal, with everything else held fixed.

These are the properties the demo relies on: if a change to the renderer made, say, the register
or the tempo inaudible, the adapter would have nothing to learn and the demo would fail in a
way that is slow to diagnose.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from musilingo.synth import render as synth_render
from musilingo.synth import ATTRIBUTES, plan_clips
from musilingo.synth.render import TEMPO_BPM, TIMBRES, render_clip, render_note

SAMPLE_RATE = 24000
SECONDS = 6.0
BASE = dataclasses.replace(plan_clips("train", 1, seed=0)[0][1], instrument="guitar",
                           percussion="none", tempo="medium", bpm=100.0, key="D", mode="major",
                           register="mid", loudness="soft", offset_s=0.05)


def _render(**changes) -> np.ndarray:
    return render_clip(dataclasses.replace(BASE, **changes), SECONDS, SAMPLE_RATE)


def _power_spectrum(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE), np.abs(np.fft.rfft(audio)) ** 2


def _high_share(audio: np.ndarray, above_hz: float) -> float:
    freqs, power = _power_spectrum(audio)
    return float(power[freqs > above_hz].sum() / power.sum())


def _spectral_flux(audio: np.ndarray, hop: int = 120, window: int = 1024) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(audio, window)[::hop] * np.hanning(window)
    magnitude = np.log1p(100 * np.abs(np.fft.rfft(frames, axis=1)))
    return np.maximum(np.diff(magnitude, axis=0), 0).sum(axis=1)


def test_render_is_deterministic_and_sized():
    first, second = _render(), _render()
    assert first.dtype == np.float32 and len(first) == SECONDS * SAMPLE_RATE
    assert np.array_equal(first, second)
    assert not np.array_equal(first, _render(noise_seed=BASE.noise_seed + 1))


@pytest.mark.parametrize("instrument", ATTRIBUTES["instrument"])
def test_register_moves_the_pitch_by_octaves(instrument):
    centroids = []
    for register in ("low", "mid", "high"):
        freqs, power = _power_spectrum(_render(instrument=instrument, register=register))
        centroids.append(np.exp((np.log(freqs[1:]) * power[1:]).sum() / power[1:].sum()))
    assert centroids[1] > 1.5 * centroids[0] and centroids[2] > 1.5 * centroids[1], centroids


@pytest.mark.parametrize("instrument", ATTRIBUTES["instrument"])
def test_mode_shows_in_the_third_of_the_chords(instrument):
    tonic = 2  # D
    for mode, present, absent in (("major", 4, 3), ("minor", 3, 4)):
        freqs, power = _power_spectrum(_render(instrument=instrument, mode=mode))
        keep = (freqs > 60) & (freqs < 5000)
        pitch_class = np.round(12 * np.log2(freqs[keep] / 440.0) + 69).astype(int) % 12
        chroma = np.bincount(pitch_class, weights=power[keep], minlength=12)
        assert chroma[(tonic + present) % 12] > 5 * chroma[(tonic + absent) % 12], (mode, chroma)


@pytest.mark.parametrize("instrument", ATTRIBUTES["instrument"])
def test_tempo_sets_the_note_rate(instrument):
    lags = {tempo: 30.0 / bpm for tempo, bpm in TEMPO_BPM.items()}  # eighth-note periods, s
    for tempo, bpm in TEMPO_BPM.items():
        onsets = _spectral_flux(_render(instrument=instrument, tempo=tempo, bpm=bpm))
        onsets = onsets - onsets.mean()
        autocorrelation = np.correlate(onsets, onsets, "full")[len(onsets) - 1:]
        at = {t: autocorrelation[int(round(lag * SAMPLE_RATE / 120))] for t, lag in lags.items()}
        # Compare with the other tempi's periods, except the one that is twice this one (the
        # slow eighth is the fast quarter note, a real periodicity of a fast clip).
        rivals = [t for t in lags if t != tempo and abs(lags[t] / lags[tempo] - 2) > 0.1]
        assert all(at[tempo] > at[rival] for rival in rivals), (tempo, at)


@pytest.mark.parametrize("instrument", ATTRIBUTES["instrument"])
def test_drums_add_broadband_hits(instrument):
    plain = _high_share(_render(instrument=instrument, register="low"), 6000)
    drums = _high_share(_render(instrument=instrument, register="low", percussion="drums"), 6000)
    assert drums > 2 * plain, (plain, drums)


@pytest.mark.parametrize("instrument", ATTRIBUTES["instrument"])
def test_loud_is_louder_and_soft_sits_nearer_the_noise_floor(instrument, monkeypatch):
    soft, loud = _render(instrument=instrument), _render(instrument=instrument, loudness="loud")
    assert np.abs(loud).max() > 5 * np.abs(soft).max()
    monkeypatch.setattr(synth_render, "NOISE_FLOOR_DBFS", -300.0)  # the tone alone
    tone_soft, tone_loud = (_render(instrument=instrument, loudness=level)
                            for level in ("soft", "loud"))
    # What survives an encoder's level normalisation: the fixed hiss is ~19 dB nearer a soft
    # clip's level than a loud one's.
    hiss_to_tone = [np.std(mix - tone) / np.std(tone)
                    for mix, tone in ((soft, tone_soft), (loud, tone_loud))]
    assert hiss_to_tone[0] > 5 * hiss_to_tone[1] and hiss_to_tone[0] > 0.01, hiss_to_tone
    assert _high_share(tone_loud, 1000) > 1.6 * _high_share(tone_soft, 1000)  # brighter


def test_instruments_have_distinct_spectra_and_envelopes():
    spectra, sustain = {}, {}
    for instrument in ATTRIBUTES["instrument"]:
        freqs, power = _power_spectrum(_render(instrument=instrument, tempo="slow", bpm=70.0))
        bands = np.add.reduceat(power, np.searchsorted(freqs, np.geomspace(50, 10000, 40)))
        spectra[instrument] = np.log(bands + 1e-12)
        note = render_note(TIMBRES[instrument], 60, 1.0, "loud", SAMPLE_RATE,
                           np.random.default_rng(0))
        early, late = (note[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)] for a, b in
                       ((0.05, 0.2), (0.7, 0.85)))
        sustain[instrument] = np.sqrt(np.mean(late ** 2) / np.mean(early ** 2))
    names = list(spectra)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            distance = np.abs(spectra[first] - spectra[second]).mean()
            assert distance > 0.5, (first, second, distance)
    # Struck and plucked notes die away while held; organ and flute notes do not (the synth's
    # detuned pair beats, so its level swings either way and is left out).
    assert max(sustain["piano"], sustain["guitar"]) < 0.7, sustain
    assert min(sustain["organ"], sustain["flute"]) > 0.9, sustain
