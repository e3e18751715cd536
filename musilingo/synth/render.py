"""Rendering one synthetic music clip from its attributes, with numpy only.

The demo needs music whose attributes are KNOWN and AUDIBLE, so that "did the adapter learn to
listen?" has a checkable answer. The adapter only sees each clip through a frozen encoder whose
frames are then AVERAGED over ~4.3 s windows, after the encoder has normalised the clip's level.
So every attribute is rendered as a property a listener hears AND that survives time averaging
and level normalisation (checked with a random-weight encoder and a linear probe, as in
docs/REFERENCE.md section 6; numbers in the package's report):

- instrument: five additive timbres (sums of harmonics) that differ in partial pattern, envelope
  and fixed "body" resonances, plus attack noise: piano (hammer thump, exponential decay, upper
  partials dying first), organ (drawbar partials, flat sustain, Leslie-like tremolo, key click),
  guitar (plucked-string spectrum, fast decay, body resonances at 120 Hz and 2.4 kHz, pick
  noise), synth lead (two detuned sawtooths, resonant low-pass, delayed vibrato), flute (nearly
  sinusoidal, slow attack, vibrato, band-passed breath noise). The resonances sit at fixed
  frequencies whatever the note, which is what identifies an instrument across registers;
- tempo: eighth-note arpeggios and a chord on every beat at ~70/100/140 BPM (each clip jittered
  by up to 3%), all notes DETACHED (fixed lengths), so the share of attacks and gaps changes
  with tempo, which a time average keeps; with drums, the beat as well;
- key and mode: a I-IV-V style progression in the key whose chords are ALL major (major mode)
  or ALL minor (natural minor: i, iv, v), so the third of every chord carries the mode;
- register: the melody's octave, centred near MIDI 45 / 62 / 79 (A2, D4, G5), 17 semitones
  apart, so the three registers do not overlap even after the 12 tonics spread each by an octave;
- percussion: kick on 1 and 3, snare on 2 and 4, hi-hat on eighths, mixed 3 dB under the
  instruments by RMS (mixed by peak, short drum hits would sit ~10 dB lower), or nothing;
- loudness: gain alone is normalised away by the encoder, so loudness is rendered as it sounds
  on a recording: soft = darker timbre (upper partials damped), gentler attacks, -20 dBFS peak,
  so the fixed -54 dBFS hiss of the "recording" is relatively 19 dB louder; loud = brighter
  timbre, gentle tanh saturation, -1 dBFS peak.

Speed: every distinct note of a clip is synthesised once and mixed in at each onset, and
harmonics come from the recurrence sin((n+1)x) = 2 cos(x) sin(nx) - sin((n-1)x), which costs
two multiply-adds per sample per partial instead of a `sin`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEMPO_BPM = {"slow": 70.0, "medium": 100.0, "fast": 140.0}
REGISTER_CENTRE_MIDI = {"low": 45, "mid": 62, "high": 79}
TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Chord roots in semitones above the tonic; every chord takes the mode's quality.
PROGRESSIONS = ((0, 5, 7, 0), (0, 7, 5, 0), (0, 5, 0, 7), (0, 0, 5, 7), (0, 7, 0, 5))
# Arpeggio patterns as indices into the chord tones (root, third, fifth, octave).
ARPEGGIOS = ((0, 1, 2, 3), (0, 1, 2, 3, 2, 1), (0, 2, 1, 2), (3, 2, 1, 0), (0, 2, 3, 2))


@dataclass(frozen=True)
class Timbre:
    amplitudes: tuple[float, ...]  # partial n+1's relative amplitude
    attack_s: float
    decay_s: float | None          # fundamental's exponential decay time; None = sustained
    partial_damping: float         # extra decay rate (1/s) per partial number: dulls the tail
    release_s: float
    vibrato_hz: float = 0.0
    vibrato_cents: float = 0.0
    tremolo_hz: float = 0.0
    tremolo_depth: float = 0.0
    detune_cents: float = 0.0      # a second, detuned oscillator (chorus / beating)
    breath: float = 0.0            # band-passed noise level relative to the tone
    # Fixed resonances (centre Hz, width Hz, gain dB) and a low-pass corner: a body's colour
    # stays at the same frequencies whatever note is played, so it identifies the instrument
    # across registers, where partial-amplitude patterns alone move with the pitch.
    body: tuple[tuple[float, float, float], ...] = ()
    lowpass_hz: float | None = None
    click: float = 0.0             # attack noise (hammer, pick, key click) level
    click_s: float = 0.005
    click_bright: bool = True      # high-passed (pick, key click) or low-passed (hammer thump)


def _plucked(n_partials: int, position: float) -> tuple[float, ...]:
    return tuple(abs(np.sin(np.pi * n * position)) / n ** 1.1 for n in range(1, n_partials + 1))


TIMBRES = {
    "piano": Timbre(tuple(1.0 / n ** 1.3 for n in range(1, 13)), attack_s=0.003, decay_s=1.1,
                    partial_damping=1.6, release_s=0.08, body=((450.0, 250.0, 4.0),),
                    lowpass_hz=4500.0, click=0.6, click_s=0.015, click_bright=False),
    "organ": Timbre((1.0, 0.8, 0.6, 0.5, 0.0, 0.35, 0.0, 0.3), attack_s=0.008, decay_s=None,
                    partial_damping=0.0, release_s=0.03, tremolo_hz=6.5, tremolo_depth=0.25,
                    click=0.15, click_s=0.003),
    "guitar": Timbre(_plucked(16, 0.18), attack_s=0.0015, decay_s=0.45, partial_damping=3.0,
                     release_s=0.05, body=((120.0, 50.0, 8.0), (2400.0, 700.0, 8.0)),
                     lowpass_hz=5000.0, click=0.25, click_s=0.006),
    "synth": Timbre(tuple(1.0 / n for n in range(1, 25)), attack_s=0.015, decay_s=None,
                    partial_damping=0.0, release_s=0.06, vibrato_hz=5.5, vibrato_cents=14.0,
                    detune_cents=9.0, body=((1600.0, 350.0, 12.0),), lowpass_hz=1900.0),
    "flute": Timbre((1.0, 0.45, 0.18, 0.08, 0.03), attack_s=0.06, decay_s=None,
                    partial_damping=0.0, release_s=0.08, vibrato_hz=5.0, vibrato_cents=18.0,
                    breath=0.12, body=((800.0, 400.0, 3.0),), lowpass_hz=1800.0),
}

# Loudness as playing style: brightness tilt on partial n (n ** tilt), attack stretch, peak.
_SOFT, _LOUD = (-0.5, 2.0, 10 ** (-20 / 20)), (0.2, 0.6, 10 ** (-1 / 20))
LOUD_DRIVE = 1.8       # tanh saturation of loud clips (gentle: heavier drive erases timbre)
MELODY_HELD_S = 0.15   # notes are detached: a fixed length, so faster tempi leave fewer gaps
CHORD_HELD_S = 0.3
NOISE_FLOOR_DBFS = -54.0  # a recording's hiss: relatively louder in soft clips, as in life
DRUM_LEVEL = 0.7       # drum bus RMS relative to the instruments' RMS (-3 dB)


@dataclass(frozen=True)
class ClipPlan:
    """Everything that decides how one clip sounds: its attributes plus the dice rolls."""

    instrument: str
    percussion: str   # "drums" | "none"
    tempo: str
    key: str          # a TONICS entry
    mode: str         # "major" | "minor"
    register: str
    loudness: str     # "soft" | "loud"
    bpm: float
    progression: tuple[int, ...]
    arpeggio: tuple[int, ...]
    offset_s: float   # silence before the first note, so clips do not all start in phase
    noise_seed: int


def midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def tonic_midi(key: str, register: str) -> int:
    """The tonic's MIDI note nearest the register's centre (ties go down)."""
    centre = REGISTER_CENTRE_MIDI[register]
    pitch_class = TONICS.index(key)
    return centre + ((pitch_class - centre + 6) % 12) - 6


def _partial_sum(phase: np.ndarray, amplitudes: np.ndarray, ratio: np.ndarray | None
                 ) -> np.ndarray:
    """sum_n amplitudes[n] * ratio**n * sin((n+1) * phase), by the sine recurrence, in place.

    The note's common envelope is applied once by the caller, not once per partial.
    """
    sin_now = np.sin(phase)
    sin_before = np.zeros_like(phase)
    twice_cos = 2.0 * np.cos(phase)
    out = np.float32(amplitudes[0]) * sin_now
    weight = None if ratio is None else ratio.copy()
    scratch = np.empty_like(phase)
    for amplitude in amplitudes[1:]:
        np.multiply(twice_cos, sin_now, out=scratch)
        scratch -= sin_before
        sin_before, sin_now, scratch = sin_now, scratch, sin_before  # scratch is free again
        if amplitude:
            np.multiply(sin_now, amplitude, out=scratch)
            if weight is not None:
                scratch *= weight
            out += scratch
        if weight is not None:
            weight *= ratio
    return out


def render_note(timbre: Timbre, midi: float, duration_s: float, loudness: str,
                sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One note of `duration_s` (held part) plus its release, float32."""
    tilt, attack_stretch, _ = _SOFT if loudness == "soft" else _LOUD
    freq = midi_to_hz(midi)
    ring_s = duration_s + timbre.release_s
    if timbre.decay_s is not None:  # let a struck/plucked note ring out past its slot
        ring_s = max(ring_s, min(3.0 * timbre.decay_s, duration_s * 2.5))
    t = np.arange(int(ring_s * sample_rate), dtype=np.float32) / np.float32(sample_rate)
    max_partials = max(1, int(0.45 * sample_rate / (freq * 1.03)))  # stay under Nyquist
    amplitudes = np.asarray(timbre.amplitudes[:max_partials], dtype=np.float32)
    numbers = np.arange(1, len(amplitudes) + 1, dtype=np.float32)
    amplitudes *= numbers ** np.float32(tilt) * _body_gain(timbre, numbers * np.float32(freq))

    attack = max(timbre.attack_s * attack_stretch, 1.0 / sample_rate)
    envelope = np.minimum(t / np.float32(attack), np.float32(1.0))
    release_from = duration_s if timbre.decay_s is None else ring_s - timbre.release_s
    envelope *= np.clip((ring_s - t) / np.float32(ring_s - release_from), 0.0, 1.0)
    ratio = None
    if timbre.decay_s is not None:
        envelope *= np.exp(-t / np.float32(timbre.decay_s * (261.6 / freq) ** 0.3))
        ratio = np.exp(-np.float32(timbre.partial_damping) * t)
    if timbre.tremolo_depth:
        swing = 0.5 * (1.0 - np.cos(np.float32(2 * np.pi * timbre.tremolo_hz) * t))
        envelope *= 1.0 - np.float32(timbre.tremolo_depth) * swing

    cents = None
    if timbre.vibrato_cents:  # vibrato fades in after 150 ms, as players do
        depth = np.clip((t - 0.15) / 0.2, 0.0, 1.0) * np.float32(timbre.vibrato_cents)
        cents = depth * np.sin(2 * np.pi * timbre.vibrato_hz * t).astype(np.float32)
    detunes = (0.0, timbre.detune_cents) if timbre.detune_cents else (0.0,)
    tone = np.zeros_like(t)
    for detune in detunes:
        # The phase is accumulated in float64 and only then rounded to float32: its rounding
        # error, times the partial number, stays under 0.02 rad for any partial below Nyquist
        # of a note under 4 s, while wrapping it (np.mod) would double the cost of a note.
        if cents is None:
            steps = np.arange(len(t), dtype=np.float64) * (freq * 2.0 ** (detune / 1200.0))
        else:
            steps = np.cumsum(freq * np.exp2((cents + np.float32(detune)) / np.float32(1200.0)),
                              dtype=np.float64)
        phase = (steps * (2 * np.pi / sample_rate)).astype(np.float32)
        tone += _partial_sum(phase, amplitudes, ratio)
    tone *= envelope
    level = float(amplitudes.sum()) * len(detunes)
    if timbre.breath:  # band-passed: smoothed (low-pass) then differenced (high-pass)
        noise = np.diff(_smooth(rng.standard_normal(len(t) + 1).astype(np.float32), 4))
        tone += np.float32(timbre.breath * level) * envelope * noise
    if timbre.click:
        length = min(len(t), int(6 * timbre.click_s * sample_rate))
        noise = rng.standard_normal(length + 1).astype(np.float32)
        noise = np.diff(noise) if timbre.click_bright else _smooth(noise, 8)[:length]
        tone[:length] += (np.float32(timbre.click * level) * noise
                          * np.exp(-t[:length] / np.float32(timbre.click_s)))
    return tone / np.float32(len(detunes))


def _smooth(signal: np.ndarray, taps: int) -> np.ndarray:
    return np.convolve(signal, np.full(taps, 1.0 / taps, dtype=np.float32), mode="same")


def _body_gain(timbre: Timbre, freqs: np.ndarray) -> np.ndarray:
    """Gain of the instrument's fixed resonances and low-pass at each partial's frequency."""
    gain = np.ones_like(freqs)
    for centre, width, decibels in timbre.body:
        peak = np.float32(10 ** (decibels / 20) - 1)
        gain *= 1 + peak * np.exp(-0.5 * ((freqs - np.float32(centre)) / np.float32(width)) ** 2)
    if timbre.lowpass_hz:
        gain /= np.sqrt(1 + (freqs / np.float32(timbre.lowpass_hz)) ** 4)
    return gain


def _drum_sounds(sample_rate: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(int(0.35 * sample_rate), dtype=np.float32) / np.float32(sample_rate)
    sweep = 45.0 + 75.0 * np.exp(-t / 0.03)  # kick: a pitch drop from 120 Hz to 45 Hz
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / sample_rate) * np.exp(-t / 0.12)
    noise = rng.standard_normal(len(t)).astype(np.float32)
    snare = (0.7 * noise * np.exp(-t / 0.06) + 0.5 * np.sin(2 * np.pi * 185.0 * t)
             * np.exp(-t / 0.05))
    hiss = np.diff(noise, prepend=np.float32(0.0))  # first difference = crude high-pass
    hat = 0.35 * hiss * np.exp(-t / 0.018)
    return {"kick": kick.astype(np.float32), "snare": snare.astype(np.float32),
            "hat": hat.astype(np.float32)}


def _rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(signal, dtype=np.float64))))


def _place(out: np.ndarray, sound: np.ndarray, start: int, gain: float = 1.0) -> None:
    if start >= len(out):
        return
    end = min(len(out), start + len(sound))
    out[start:end] += np.float32(gain) * sound[:end - start]


def render_clip(plan: ClipPlan, seconds: float, sample_rate: int) -> np.ndarray:
    """The clip as float32 samples in [-1, 1]."""
    rng = np.random.default_rng(plan.noise_seed)
    timbre = TIMBRES[plan.instrument]
    out = np.zeros(int(round(seconds * sample_rate)), dtype=np.float32)
    beat_s = 60.0 / plan.bpm
    step_s = beat_s / 2  # eighth notes
    third = 4 if plan.mode == "major" else 3
    tonic = tonic_midi(plan.key, plan.register)
    notes: dict[tuple[int, float], np.ndarray] = {}

    def note(midi: int, held_s: float) -> np.ndarray:
        key = (midi, round(held_s, 4))
        if key not in notes:
            notes[key] = render_note(timbre, midi, held_s, plan.loudness, sample_rate, rng)
        return notes[key]

    n_bars = int(np.ceil((seconds - plan.offset_s) / (4 * beat_s))) + 1
    for bar in range(n_bars):
        interval = plan.progression[bar % len(plan.progression)]
        root = tonic + (interval if interval <= 6 else interval - 12)  # IV above, V below
        chord = (root, root + third, root + 7, root + 12)
        bar_start = plan.offset_s + bar * 4 * beat_s
        # Accompaniment: the triad struck on every beat; melody: an eighth-note arpeggio.
        # Both are detached (fixed note lengths), so the share of the clip taken by attacks
        # and by gaps changes with the tempo, which survives averaging over seconds.
        for beat in range(4):
            for voice in chord[:3]:
                _place(out, note(voice, min(beat_s * 0.92, CHORD_HELD_S)),
                       int((bar_start + beat * beat_s) * sample_rate), 0.3)
        for step in range(8):
            midi = chord[plan.arpeggio[(bar * 8 + step) % len(plan.arpeggio)]]
            jitter = rng.uniform(-0.004, 0.004)  # a human's timing, not a sequencer's
            start = int((bar_start + step * step_s + jitter) * sample_rate)
            _place(out, note(midi, min(step_s * 0.92, MELODY_HELD_S)), max(start, 0), 0.8)

    peak = float(np.max(np.abs(out))) or 1.0
    out /= np.float32(peak)
    if plan.percussion == "drums":
        drums = np.zeros_like(out)
        sounds = _drum_sounds(sample_rate, rng)
        for beat in range(int(np.ceil(seconds / beat_s)) + 1):
            at = plan.offset_s + beat * beat_s
            _place(drums, sounds["kick" if beat % 2 == 0 else "snare"],
                   int(at * sample_rate), 1.0)
            for half in (0.0, step_s):
                _place(drums, sounds["hat"], int((at + half) * sample_rate),
                       rng.uniform(0.7, 1.0))
        # Matched by RMS, not peak: drum hits are short, and a kit mixed by peak sits ~10 dB
        # under the instruments, where an encoder barely registers it.
        scale = DRUM_LEVEL * _rms(out) / (_rms(drums) or 1.0)
        out += np.float32(scale) * drums

    _, _, target_peak = _SOFT if plan.loudness == "soft" else _LOUD
    if plan.loudness == "loud":
        out = np.tanh(np.float32(LOUD_DRIVE) * out / np.float32(np.max(np.abs(out)) or 1.0))
    fade = min(len(out) // 2, int(0.01 * sample_rate))  # no clicks at the cut points
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        out[:fade] *= ramp
        out[-fade:] *= ramp[::-1]
    out *= np.float32(target_peak / (float(np.max(np.abs(out))) or 1.0))
    hiss = _smooth(rng.standard_normal(len(out)).astype(np.float32), 2)
    out += np.float32(10 ** (NOISE_FLOOR_DBFS / 20) / (_rms(hiss) or 1.0)) * hiss
    return out
