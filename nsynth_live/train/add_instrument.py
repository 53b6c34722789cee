"""Add an instrument of one's own to a trained model v3: learn a new 16-dim instrument embedding with the
model frozen, then write the model with the new instrument appended.

The trained model (:class:`~nsynth_live.models.sing_harmonic.SingHarmonic`) is conditioned on a row of
its instrument table (SING's instrument embedding, Defossez et al. 2018, section 3.2); every other
weight is shared by all instruments. So a new instrument needs only a new row, fitted by gradient
descent through the frozen network to the user's notes, as textual inversion (Gal et al. 2022) fits one
new word embedding of a frozen image model: Adam on the 16 numbers alone, from the mean of the trained
rows, on random crops of the notes with DDSP's multi-resolution spectral loss (Engel et al. 2020,
section 4.2.1), the training loss of :mod:`nsynth_live.train.sing_harmonic`. The learned stiff-string
stretch (``inharmonicity_head``) reads the embedding, so it adapts with it.

The notes come from a folder of audio files (:func:`load_note_folder`: pitch from the file name,
:func:`pitch_from_name`, or estimated from the audio) or from a SoundFont preset rendered as the
training set was (:func:`render_soundfont_preset`). Either way they are prepared as the dataset of
:mod:`nsynth_live.data.soundfont`: mono, at the model's rate, cut or padded to the model's note length
(4 s, note-on at 0), and the whole set scaled so that its loudest note peaks at -1 dBFS.

:func:`add_instrument_to_model` then writes the ONNX file with the name and the embedding added to its
metadata (the graph takes the embedding as an input: its weights, and so its ``weights_sha256``, do not
change), its replay graph next to it, and the ``.pt`` checkpoint with the instrument table grown by one
row. Instruments added this way are listed in both files under ``added_instruments``; the trained ones
can never be replaced.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import re
import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from nsynth_live.constants import NSYNTH_NOTE_OFF_SECONDS

logger = logging.getLogger(__name__)

ADDED_INSTRUMENTS_KEY = "added_instruments"  # ONNX metadata (JSON list) and checkpoint extra: names added here
INSTRUMENT_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what NAME may be (never a path)
NOTE_PEAK_DBFS = -1.0  # dBFS: the loudest note of a set, as the SoundFont dataset (data.soundfont)
SOUNDFONT_SILENCE_DBFS = -50.0  # dBFS: rendered notes quieter than this are dropped (outside the key range)
SILENT_NOTE_PEAK = 1e-6  # full scale (-120 dBFS): a file this quiet holds no note
DEFAULT_VELOCITY = 100  # MIDI velocity of a file whose name gives none
CUT_FADE_SECONDS = 0.05  # raised-cosine fade-out where a note longer than the model's is cut
ONSET_FLOOR_DB = 40.0  # dB under a note's peak: samples before the first louder one are leading silence
ONSET_KEEP_SECONDS = 0.002  # kept before the detected onset (the attack's first cycle)
PRESET_PITCH_STEP_SEMITONES = 3  # a rendered preset: every 3rd MIDI note of the model's range
PRESET_VELOCITIES = (50, 100, 127)  # MIDI velocities of a rendered preset
SOUNDFONT_BANKS = tuple(range(129))  # banks probed for presets: GM/GS 0-127 and percussion 128
NOTE_NAME_OFFSETS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}  # semitones above C
EMBEDDING_RADIUS_FACTOR = 1.5  # the fitted row stays within this x the trained rows' largest distance from their mean
EVAL_NOTES = 16  # notes of the fixed evaluation crops (loss before / after)
AUDIO_SUFFIXES_HINT = "WAV, FLAC, OGG, AIFF, MP3"


class AddInstrumentError(ValueError):
    """A one-line, user-facing error: bad folder, pitch, preset, name or model file."""


class AddInstrumentRefused(AddInstrumentError):
    """A refusal to overwrite: an instrument or file that exists (``--force``), or a trained instrument."""


# ---------------------------------------------------------------------------------------------- names
def check_instrument_name(name: str) -> str:
    """Return ``name`` if it is a safe instrument name: 1-64 of letters, digits, ``_`` and ``-``.

    Raises
    ------
    AddInstrumentError
        Otherwise (no path separators, dots, spaces or other characters: the name never reaches the
        filesystem, but it is shown in presets, file names of exported banks and OSC messages).
    """
    if not isinstance(name, str) or not INSTRUMENT_NAME_PATTERN.fullmatch(name):
        raise AddInstrumentError(f"instrument name {name!r} is not allowed: use 1-64 letters, digits, '_' or '-' "
                                 "(for example oboe_mine)")
    return name


_NSYNTH_NOTE = re.compile(r"(?:^|[-_])(\d{3})-(\d{3})$")  # <instrument_str>-<pitch:03d>-<velocity:03d>
_NOTE_NAME = re.compile(r"([a-g])(#|s|b|\u266f|\u266d)?(\d)")  # C4, F#3, Fs3, Bb2 (octave 0-9)
_PREFIXED_NUMBER = re.compile(r"(?:note|midi|key|pitch|n)(\d{1,3})")  # note60, midi060
_VELOCITY = re.compile(r"(?:v|vel|velo|velocity)(\d{1,3})")  # v100, vel100
_NUMBER = re.compile(r"\d{1,3}")
# Dynamic marks in sample-library names (Piano.ff.C4.aiff) -> MIDI velocity: NSynth's 25-127 scale, mf = 75
DYNAMIC_VELOCITIES = {"ppp": 16, "pp": 25, "p": 40, "mp": 60, "mf": 75, "f": 100, "ff": 115, "fff": 127}
_SEPARATORS = re.compile(r"[\s_.,;()\[\]-]+")


def _tokens(stem: str) -> list[str]:
    return [t for t in _SEPARATORS.split(stem.lower()) if t]


def pitch_from_name(stem: str) -> int | None:
    """The MIDI note number a file name gives, or None when it gives none (or several).

    Accepted, case-insensitive, as tokens separated by ``_ - . space``: NSynth's ``<instrument>-060-100``
    (pitch, velocity), a note name in scientific pitch notation (``C4`` = 60, ``F#3``/``Fs3`` = 54,
    ``Bb2`` = 46; octaves 0-9), a prefixed number (``note60``, ``midi060``, ``key60``, ``n60``), or a
    bare number 0-127 (``060``). Velocity tokens (``v100``, ``vel100``) are not pitches. Note names and
    prefixed numbers win over bare numbers (``piano2_C4`` is 60); two different candidates of the
    same kind give None.

    Parameters
    ----------
    stem : str
        File name without its suffix.

    Returns
    -------
    int or None
        MIDI note number 0-127.
    """
    nsynth = _NSYNTH_NOTE.search(stem)
    if nsynth and int(nsynth.group(1)) <= 127:
        return int(nsynth.group(1))
    explicit, bare = set(), set()
    for token in _tokens(stem):
        if _VELOCITY.fullmatch(token):
            continue
        if match := _NOTE_NAME.fullmatch(token):
            letter, accidental, octave = match.groups()
            shift = {None: 0, "#": 1, "s": 1, "\u266f": 1, "b": -1, "\u266d": -1}[accidental]
            explicit.add(12 * (int(octave) + 1) + NOTE_NAME_OFFSETS[letter] + shift)
        elif match := _PREFIXED_NUMBER.fullmatch(token):
            explicit.add(int(match.group(1)))
        elif _NUMBER.fullmatch(token):
            bare.add(int(token))
    for candidates in (explicit, bare):
        candidates = {p for p in candidates if 0 <= p <= 127}
        if len(candidates) == 1:
            return candidates.pop()
        if candidates:
            return None
    return None


def velocity_from_name(stem: str, *, default: int = DEFAULT_VELOCITY) -> int:
    """MIDI velocity 1-127 a file name gives (``v100``, ``vel100``, NSynth's ``<instrument>-060-100``, or
    a dynamic mark token ``pp`` .. ``fff``: :data:`DYNAMIC_VELOCITIES`), else ``default``. Numbers
    outside 1-127 are clipped."""
    nsynth = _NSYNTH_NOTE.search(stem)
    if nsynth:
        return int(np.clip(int(nsynth.group(2)), 1, 127))
    tokens = _tokens(stem)
    for token in tokens:
        if match := _VELOCITY.fullmatch(token):
            return int(np.clip(int(match.group(1)), 1, 127))
    for token in tokens:
        if token in DYNAMIC_VELOCITIES:
            return DYNAMIC_VELOCITIES[token]
    return default


def estimate_pitch_midi(audio: np.ndarray, *, sample_rate: int) -> int:
    """Nearest MIDI note of a mono note's fundamental (:func:`nsynth_live.functional.pitch.estimate_f0_hz`).

    Parameters
    ----------
    audio : (time,) float32
    sample_rate : int
        Hz (at least 8400: the estimator searches up to 2.1 kHz, a quarter of the rate).

    Raises
    ------
    nsynth_live.functional.pitch.NoStablePitchError
        Silence, noise, a chord or a wandering pitch.
    """
    from nsynth_live.functional.midi import hz_to_midi  # noqa: PLC0415
    from nsynth_live.functional.pitch import estimate_f0_hz  # noqa: PLC0415

    return int(round(float(hz_to_midi(estimate_f0_hz(audio, sample_rate=sample_rate)))))


# ------------------------------------------------------------------------------------- note sets
def fit_note_length(audio: np.ndarray, *, sample_rate: int, note_samples: int) -> np.ndarray:
    """Leading silence trimmed (before the first sample within :data:`ONSET_FLOOR_DB` of the peak,
    keeping :data:`ONSET_KEEP_SECONDS`), then padded with zeros or cut to ``note_samples`` with a
    :data:`CUT_FADE_SECONDS` raised-cosine fade-out.

    Parameters
    ----------
    audio : (time,) float32, mono
    sample_rate : int
        Hz.
    note_samples : int

    Returns
    -------
    (note_samples,) float32
    """
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0:
        onset = int(np.argmax(np.abs(audio) >= peak * 10.0 ** (-ONSET_FLOOR_DB / 20.0)))
        audio = audio[max(0, onset - int(ONSET_KEEP_SECONDS * sample_rate)):]
    out = np.zeros(note_samples, np.float32)
    if audio.shape[0] <= note_samples:
        out[: audio.shape[0]] = audio
        return out
    out[:] = audio[:note_samples]
    fade = min(note_samples, max(1, int(CUT_FADE_SECONDS * sample_rate)))
    out[-fade:] *= (0.5 + 0.5 * np.cos(np.pi * (np.arange(fade) + 1) / fade)).astype(np.float32)
    return out


def normalize_note_set(notes: list[tuple[int, int, np.ndarray]], *, peak_dbfs: float = NOTE_PEAK_DBFS):
    """Scale all notes by one gain so that the loudest peaks at ``peak_dbfs`` (velocity dynamics kept),
    as :func:`nsynth_live.data.soundfont.build_soundfont_dataset` does per instrument.

    Parameters
    ----------
    notes : list of (pitch_midi, velocity, audio (time,) float32)

    Returns
    -------
    list of (pitch_midi, velocity, audio) float32, and the gain applied in dB (0 for an empty or silent set).
    """
    peak = max((float(np.max(np.abs(a))) for _, _, a in notes), default=0.0)
    if peak <= 0:
        return list(notes), 0.0
    gain = 10.0 ** (peak_dbfs / 20.0) / peak
    return [(p, v, (a * gain).astype(np.float32)) for p, v, a in notes], 20.0 * math.log10(gain)


def load_note_folder(folder: str | os.PathLike, *, sample_rate: int, note_samples: int, pitch_min_midi: int = 36,
                     pitch_max_midi: int = 84, notice: Callable[[str], None] | None = None,
                     ) -> list[tuple[int, int, np.ndarray]]:
    """Read a folder of single notes as a model's training notes.

    Every file directly in the folder (not in sub-folders; hidden files skipped) that libsndfile reads
    (WAV, FLAC, OGG, AIFF, MP3...; any rate, mono or multi-channel, mixed to mono) is one note.
    Its pitch comes from the name (:func:`pitch_from_name`), else from the audio
    (:func:`estimate_pitch_midi`); its velocity from the name (:func:`velocity_from_name`), else
    100. Each note is resampled (soxr, high quality) to ``sample_rate``, fitted to ``note_samples``
    (:func:`fit_note_length`), and the set is scaled so that its loudest note peaks at -1 dBFS
    (:func:`normalize_note_set`). Notes outside ``pitch_min_midi..pitch_max_midi``, unreadable files
    and silent files are dropped with a notice.

    Parameters
    ----------
    folder : path
    sample_rate : int
        Hz, the model's.
    note_samples : int
        The model's note length (4 s).
    pitch_min_midi, pitch_max_midi : int
        The MIDI range the model was trained on (inclusive).
    notice : callable(str), optional
        Receives one line per dropped file or group of files (default: ``logger.warning``).

    Returns
    -------
    list of (pitch_midi int, velocity int, audio (note_samples,) float32), sorted by file name.

    Raises
    ------
    AddInstrumentError
        The folder does not exist or is empty, no file is readable audio, a file's pitch is neither
        in its name nor estimable (the message names the file), or no note is left in the range.
    """
    import soundfile as sf  # noqa: PLC0415
    import soxr  # noqa: PLC0415

    from nsynth_live.functional.pitch import NoStablePitchError  # noqa: PLC0415

    notice = notice or logger.warning
    folder = Path(folder)
    if not folder.is_dir():
        raise AddInstrumentError(f"note folder {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise AddInstrumentError(f"note folder {folder} is empty: put one audio file per note in it "
                                 f"({AUDIO_SUFFIXES_HINT}; name them like C4_v100.wav or 060.wav)")
    notes, unreadable, silent, outside = [], [], [], []
    for path in files:
        try:
            data, rate = sf.read(path, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, TypeError, ValueError):
            unreadable.append(path.name)
            continue
        if data.shape[0] == 0:
            silent.append(path.name)
            continue
        mono = data.mean(axis=1)
        if rate != sample_rate:
            mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
        if not np.all(np.isfinite(mono)):
            raise AddInstrumentError(f"{path} holds NaN or infinite samples: re-export it")
        if float(np.max(np.abs(mono))) < SILENT_NOTE_PEAK:
            silent.append(path.name)
            continue
        audio = fit_note_length(mono, sample_rate=sample_rate, note_samples=note_samples)
        pitch = pitch_from_name(path.stem)
        if pitch is None:
            try:
                pitch = estimate_pitch_midi(audio, sample_rate=sample_rate)
            except NoStablePitchError as exc:
                raise AddInstrumentError(
                    f"{path}: no pitch in the name and none estimated ({str(exc).split(';')[0]}); name it with "
                    "its note (C4.wav, 060.wav, note60.wav)") from None
            notice(f"{path.name}: no pitch in the name, estimated MIDI {pitch}")
        if not pitch_min_midi <= pitch <= pitch_max_midi:
            outside.append(f"{path.name} (MIDI {pitch})")
            continue
        notes.append((pitch, velocity_from_name(path.stem), audio))
    if unreadable:
        notice(f"skipped {len(unreadable)} file(s) that are not readable audio: {_listed(unreadable)}")
    if silent:
        notice(f"skipped {len(silent)} silent file(s): {_listed(silent)}")
    if outside:
        notice(f"dropped {len(outside)} note(s) outside the model's MIDI {pitch_min_midi}-{pitch_max_midi}: "
               f"{_listed(outside)}")
    if not notes:
        if len(unreadable) == len(files):
            raise AddInstrumentError(f"no readable audio in {folder} ({len(files)} file(s); libsndfile reads "
                                     f"{AUDIO_SUFFIXES_HINT})")
        raise AddInstrumentError(f"no usable note in {folder}: every note is silent or outside MIDI "
                                 f"{pitch_min_midi}-{pitch_max_midi}")
    return normalize_note_set(notes)[0]


def _listed(names: Sequence[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


# ----------------------------------------------------------------------------------- SoundFonts
def _fluidsynth():
    from nsynth_live.data.soundfont import _require_fluidsynth  # noqa: PLC0415

    return _require_fluidsynth()


def _load_soundfont(synth, path: Path) -> int:
    if not path.is_file():
        raise AddInstrumentError(f"SoundFont {path} does not exist")
    sfid = synth.sfload(str(path))
    if sfid < 0:
        raise AddInstrumentError(f"FluidSynth could not read {path} as a SoundFont (SF2/SF3)")
    return sfid


def list_soundfont_presets(path: str | os.PathLike, *, banks: Sequence[int] = SOUNDFONT_BANKS,
                           ) -> list[tuple[int, int, str]]:
    """Presets of an SF2/SF3 file, found by asking FluidSynth for every (bank, program).

    Parameters
    ----------
    path : path
    banks : sequence of int
        Banks probed (default 0-128: General MIDI, GS variations and the percussion bank 128).

    Returns
    -------
    list of (bank, program 0-127, name), sorted by bank then program.

    Raises
    ------
    AddInstrumentError
        The file does not exist or FluidSynth cannot read it.
    RuntimeError
        pyfluidsynth or libfluidsynth is missing (the message says what to install).
    """
    fluidsynth = _fluidsynth()
    synth = fluidsynth.Synth()
    try:
        sfid = _load_soundfont(synth, Path(path))
        found = []
        for bank in banks:
            for program in range(128):
                name = synth.sfpreset_name(sfid, bank, program)
                if name is not None:
                    found.append((bank, program, name.strip()))
        return found
    finally:
        synth.delete()


def find_soundfont_preset(presets: Sequence[tuple[int, int, str]], query: str) -> tuple[int, int, str]:
    """The preset ``query`` names: ``"bank:program"`` (``"0:68"``), an exact name (any case), or a
    part of exactly one name.

    Raises
    ------
    AddInstrumentError
        No preset or several match (the message suggests close names, or lists the matches).
    """
    text = query.strip()
    if match := re.fullmatch(r"(\d{1,5}):(\d{1,3})", text):
        key = int(match.group(1)), int(match.group(2))
        for preset in presets:
            if preset[:2] == key:
                return preset
        raise AddInstrumentError(f"no preset at bank:program {text}; --list shows the file's presets")
    folded = text.casefold()
    exact = [p for p in presets if p[2].casefold() == folded]
    if exact:
        return exact[0]
    partial = [p for p in presets if folded and folded in p[2].casefold()]
    if len(partial) == 1:
        return partial[0]
    if partial:
        raise AddInstrumentError(f"preset {query!r} matches {len(partial)} presets: "
                                 f"{_listed([f'{b}:{n} {name}' for b, n, name in partial], 6)}; give the full "
                                 "name or bank:program")
    close = difflib.get_close_matches(text, [p[2] for p in presets], n=4, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; --list shows the file's presets"
    raise AddInstrumentError(f"no preset named {query!r}{hint}")


def render_soundfont_preset(path: str | os.PathLike, *, bank: int, program: int, sample_rate: int,
                            note_samples: int, pitches_midi: Sequence[int], velocities: Sequence[int] = PRESET_VELOCITIES,
                            note_off_seconds: float = NSYNTH_NOTE_OFF_SECONDS, gain: float = 1.0,
                            ) -> list[tuple[int, int, np.ndarray]]:
    """Render notes of one SoundFont preset as the training set was rendered
    (:func:`nsynth_live.data.soundfont.render_instrument_notes`): a fresh FluidSynth per call, reverb
    and chorus off, note-on at 0, note-off at ``note_off_seconds``, 1 s of silence between notes,
    stereo mixed to mono; notes whose peak is under -50 dBFS (outside the preset's key range) dropped;
    the rest scaled together so that the loudest peaks at -1 dBFS.

    Parameters
    ----------
    path : path
        SF2/SF3 file.
    bank, program : int
        The preset (``program`` 0-127; ``bank`` as :func:`list_soundfont_presets` reports it).
    sample_rate : int
        Hz.
    note_samples : int
    pitches_midi, velocities : sequence of int
    note_off_seconds : float
    gain : float
        FluidSynth's master gain.

    Returns
    -------
    list of (pitch_midi, velocity, audio (note_samples,) float32)

    Raises
    ------
    AddInstrumentError
        The file is not a SoundFont, has no such preset, or every note is silent.
    """
    fluidsynth = _fluidsynth()
    synth = fluidsynth.Synth(gain=gain, samplerate=float(sample_rate),
                             **{"synth.reverb.active": 0, "synth.chorus.active": 0})
    notes = []
    try:
        sfid = _load_soundfont(synth, Path(path))
        if synth.program_select(0, sfid, bank, program) != 0:
            raise AddInstrumentError(f"SoundFont {path} has no preset at bank {bank}, program {program}")
        held_samples = int(round(note_off_seconds * sample_rate))
        for pitch in pitches_midi:
            for velocity in velocities:
                synth.noteon(0, int(pitch), int(velocity))
                held = synth.get_samples(held_samples)
                synth.noteoff(0, int(pitch))
                released = synth.get_samples(note_samples - held_samples)
                stereo = np.concatenate([held, released]).reshape(-1, 2).astype(np.float32) / 32768.0
                notes.append((int(pitch), int(velocity), stereo.mean(axis=1)))
                synth.all_sounds_off(0)
                synth.get_samples(sample_rate)  # 1 s flush: every voice gone
    finally:
        synth.delete()
    threshold = 10.0 ** (SOUNDFONT_SILENCE_DBFS / 20.0)
    kept = [note for note in notes if float(np.max(np.abs(note[2]))) >= threshold]
    if not kept:
        raise AddInstrumentError(f"preset {bank}:{program} of {path} is silent at MIDI {min(pitches_midi)}-"
                                 f"{max(pitches_midi)}: choose another preset")
    return normalize_note_set(kept)[0]


def preset_pitches_midi(pitch_min_midi: int, pitch_max_midi: int,
                        step_semitones: int = PRESET_PITCH_STEP_SEMITONES) -> tuple[int, ...]:
    """Every ``step_semitones``-th MIDI note from ``pitch_min_midi``, with ``pitch_max_midi`` included."""
    pitches = list(range(pitch_min_midi, pitch_max_midi + 1, step_semitones))
    if pitches[-1] != pitch_max_midi:
        pitches.append(pitch_max_midi)
    return tuple(pitches)


# --------------------------------------------------------------------------------------- fitting
def fit_instrument_embedding(
    model,
    notes: Sequence[tuple[int, int, np.ndarray]],
    *,
    steps: int = 1000,
    minutes: float | None = 15.0,
    batch_size: int = 8,
    crop_frames: int = 40,
    gradient_frames_before: int = 8,
    attack_crop_share: float = 0.25,
    learning_rate: float = 0.05,
    lr_decay: float = 0.1,
    n_ffts: Sequence[int] = (2048, 1024, 512, 256, 128, 64),
    eval_every_steps: int = 50,
    init: str = "mean",
    init_embedding: np.ndarray | None = None,
    trained_rows: Sequence[int] | None = None,
    seed: int = 0,
    progress: Callable[[dict], None] | None = None,
) -> tuple[np.ndarray, dict]:
    """Learn the instrument embedding that makes a frozen model v3 play ``notes``.

    Only the embedding (``instrument_dims`` numbers) is optimised, by Adam; the model's weights are
    untouched (their ``requires_grad`` is restored on return). Each step renders one crop of
    ``crop_frames`` hops of ``batch_size`` random notes (one start frame for the batch, frame 0 with
    probability ``attack_crop_share``: the crops of
    :class:`nsynth_live.train.sing_harmonic.HarmonicTrainer`) and descends
    :func:`~nsynth_live.train.sing_harmonic.ddsp_spectral_loss`. The learning rate decays
    exponentially to ``lr_decay`` times its start over the run, the run's progress being the larger
    of steps done and time used. After each step the embedding is kept within
    :data:`EMBEDDING_RADIUS_FACTOR` times the trained rows' largest distance from their mean (the
    region where the network was trained), so that pitches the notes do not cover stay plausible.

    The loss is measured on fixed evaluation crops (up to :data:`EVAL_NOTES` notes spread over the
    set, at the attack, the held part and the release) at the start, every ``eval_every_steps``
    steps and at the end; the embedding returned is the best one measured (so ``loss_after <=
    loss_before``: one crop per step is a noisy gradient, and the last iterate is not always the
    best).

    Parameters
    ----------
    model : SingHarmonic
        A trained model v3 (``nsynth_live.models.checkpoint.load_sing``).
    notes : sequence of (pitch_midi int, velocity int, audio (note_samples,) float32)
        At the model's rate and note length (:func:`load_note_folder`, :func:`render_soundfont_preset`).
    steps : int
        Optimiser steps at most (0: only measure the starting embedding).
    minutes : float or None
        Wall-clock budget of the whole fit, evaluations included; None: no limit.
    batch_size, crop_frames, gradient_frames_before, attack_crop_share : int, int, int, float
        As in :class:`~nsynth_live.train.sing_harmonic.HarmonicTrainConfig` (the LSTM runs from the
        note's start without gradient up to ``gradient_frames_before`` frames before the crop).
    learning_rate, lr_decay : float
        Adam's step size (embedding units) at the start, and the end's over the start.
    n_ffts : sequence of int
        FFT sizes of the loss; the crop (``crop_frames * hop``) must hold the largest.
    eval_every_steps : int
        Steps between two measurements on the evaluation crops.
    init : {"mean", "best"}
        Start from the mean of the trained rows, or from the best on the evaluation crops of the mean
        and every trained row (costs ``num_instruments + 1`` measurements).
    init_embedding : (instrument_dims,) float, optional
        Start here (overrides ``init``).
    trained_rows : sequence of int, optional
        The rows of the instrument table the model was trained on (:func:`trained_instrument_rows`):
        their mean, their spread and, for ``init="best"``, the candidates; default every row.
    seed : int
        Seeds the crops.
    progress : callable(dict), optional
        Called after every step with ``{"step", "steps", "loss", "elapsed_seconds"}`` (``loss``: the
        step's crop), and after each measurement with ``"eval_loss"`` added.

    Returns
    -------
    embedding : (instrument_dims,) float32 numpy array
    report : dict
        ``loss_before`` (the starting embedding), ``loss_after`` (the returned one), both on the
        evaluation crops; ``init`` (``"mean"``, ``"row <i>"`` or ``"given"``), ``steps`` done,
        ``best_step``, ``seconds``, ``stopped_by`` (``"steps"`` or ``"time"``), ``notes``,
        ``nearest_trained_row`` (table index of the trained row closest to the result), ``radius_limited``
        (whether the distance limit was reached) and ``history`` (``[step, evaluation loss]`` pairs).

    Raises
    ------
    ValueError
        No notes, notes of another length, a crop shorter than the largest FFT, or bad settings.
    """
    import torch  # noqa: PLC0415

    from nsynth_live.train.sing_harmonic import ddsp_spectral_loss  # noqa: PLC0415

    cfg = model.config
    if not notes:
        raise ValueError("no notes to fit")
    if steps < 0 or batch_size < 1 or eval_every_steps < 1 or not 1 <= crop_frames <= cfg.time_steps:
        raise ValueError(f"need steps >= 0, batch_size >= 1, eval_every_steps >= 1 and 1 <= crop_frames <= "
                         f"{cfg.time_steps}; got {steps}, {batch_size}, {eval_every_steps}, {crop_frames}")
    if init not in ("mean", "best"):
        raise ValueError(f"init must be 'mean' or 'best', got {init!r}")
    if crop_frames * cfg.hop_length_samples < max(n_ffts):
        raise ValueError(f"a crop of {crop_frames} hops ({crop_frames * cfg.hop_length_samples} samples) is shorter "
                         f"than the {max(n_ffts)}-point FFT of the loss")
    lengths = {int(a.shape[0]) for _, _, a in notes}
    if lengths != {cfg.note_samples}:
        raise ValueError(f"notes must have the model's {cfg.note_samples} samples, got lengths {sorted(lengths)}")
    started = time.monotonic()
    budget = None if minutes is None else 60.0 * float(minutes)
    hop = cfg.hop_length_samples
    audio = torch.from_numpy(np.stack([np.asarray(a, np.float32) for _, _, a in notes]))
    pitch = torch.tensor([int(p) for p, _, _ in notes], dtype=torch.long)
    velocity = torch.tensor([float(v) for _, v, _ in notes])
    full_table = model.sequence_generator.instrument_table.weight.detach().clone()
    rows_trained = list(range(full_table.shape[0])) if trained_rows is None else [int(i) for i in trained_rows]
    if not rows_trained or not all(0 <= i < full_table.shape[0] for i in rows_trained):
        raise ValueError(f"trained_rows must be indices of the {full_table.shape[0]} table rows, got {trained_rows}")
    table = full_table[rows_trained]
    mean = table.mean(dim=0)
    radius = EMBEDDING_RADIUS_FACTOR * float((table - mean).norm(dim=1).max())
    n_ffts = tuple(int(n) for n in n_ffts)

    def crops(rows, first_frame):
        offsets = first_frame[:, None] * hop + torch.arange(crop_frames * hop)
        padded = torch.nn.functional.pad(audio[rows], (0, crop_frames * hop))
        return padded.gather(1, offsets)

    def render(rows, first_frame, emb, *, grad):
        return model(emb.expand(len(rows), -1), pitch[rows], velocity[rows], first_frame=first_frame,
                     frames=crop_frames, gradient_frames_before=gradient_frames_before if grad else None)

    last_start = cfg.time_steps - crop_frames
    note_off_frame = min(last_start, int(NSYNTH_NOTE_OFF_SECONDS * cfg.sample_rate) // hop)
    eval_rows = torch.from_numpy(np.unique(np.linspace(0, len(notes) - 1, min(EVAL_NOTES, len(notes))).round()
                                           .astype(np.int64)))
    eval_starts = sorted({0, min(last_start, note_off_frame // 2), note_off_frame})

    @torch.no_grad()
    def evaluate(emb) -> float:
        total = 0.0
        for first in eval_starts:
            first_frame = torch.full((len(eval_rows),), first, dtype=torch.long)
            total += float(ddsp_spectral_loss(render(eval_rows, first_frame, emb, grad=False),
                                              crops(eval_rows, first_frame), n_ffts=n_ffts))
        return total / len(eval_starts)

    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    try:
        eval_started = time.monotonic()
        if init_embedding is not None:
            start = torch.as_tensor(np.asarray(init_embedding, np.float32)).reshape(-1)
            if start.shape != (cfg.instrument_dims,):
                raise ValueError(f"init_embedding must have {cfg.instrument_dims} values, got {tuple(start.shape)}")
            init_name, loss_before = "given", evaluate(start)
        else:
            init_name, start, loss_before = "mean", mean.clone(), evaluate(mean)
            if init == "best":
                for index in range(table.shape[0]):
                    loss = evaluate(table[index])
                    if loss < loss_before:
                        init_name, start, loss_before = f"row {rows_trained[index]}", table[index].clone(), loss
        eval_seconds = (time.monotonic() - eval_started) / (1 if init_embedding is not None or init == "mean"
                                                              else table.shape[0] + 1)
        deadline = None if budget is None else started + budget - eval_seconds  # the final measurement fits
        embedding = torch.nn.Parameter(start.clone())
        optimizer = torch.optim.Adam([embedding], lr=learning_rate)
        best, best_loss, best_step = start.clone(), loss_before, 0
        history = [[0, round(loss_before, 5)]]
        generator = torch.Generator().manual_seed(seed)
        done, stopped_by, limited = 0, "steps", False
        while done < steps:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                stopped_by = "time"
                break
            fraction = done / max(1, steps)
            if deadline is not None:
                fraction = max(fraction, (now - started) / max(1e-9, deadline - started))
            for group in optimizer.param_groups:
                group["lr"] = learning_rate * lr_decay ** min(1.0, fraction)
            rows = torch.randint(0, len(notes), (batch_size,), generator=generator)
            first = int(torch.randint(0, last_start + 1, (1,), generator=generator))
            if float(torch.rand(1, generator=generator)) < attack_crop_share:
                first = 0
            first_frame = torch.full((batch_size,), first, dtype=torch.long)
            loss = ddsp_spectral_loss(render(rows, first_frame, embedding, grad=True), crops(rows, first_frame),
                                      n_ffts=n_ffts)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                offset = embedding - mean
                distance = float(offset.norm())
                if distance > radius:
                    embedding.copy_(mean + offset * (radius / distance))
                    limited = True
            done += 1
            state = {"step": done, "steps": steps, "loss": float(loss.detach())}
            last = done == steps or (deadline is not None and time.monotonic() >= deadline)
            if done % eval_every_steps == 0 or last:
                measured = evaluate(embedding.detach())
                history.append([done, round(measured, 5)])
                state["eval_loss"] = measured
                if measured < best_loss:
                    best, best_loss, best_step = embedding.detach().clone(), measured, done
            if progress is not None:
                progress({**state, "elapsed_seconds": time.monotonic() - started})
        if history[-1][0] != done:  # stopped by time between two measurements
            measured = evaluate(embedding.detach())
            history.append([done, round(measured, 5)])
            if measured < best_loss:
                best, best_loss, best_step = embedding.detach().clone(), measured, done
    finally:
        for parameter, flag in zip(model.parameters(), flags):
            parameter.requires_grad_(flag)
        model.train(was_training)
    report = {
        "loss_before": round(loss_before, 5),
        "loss_after": round(best_loss, 5),
        "init": init_name,
        "steps": done,
        "best_step": best_step,
        "seconds": round(time.monotonic() - started, 1),
        "stopped_by": stopped_by,
        "notes": len(notes),
        "nearest_trained_row": rows_trained[int((table - best).norm(dim=1).argmin())],
        "radius_limited": limited,
        "history": history,
    }
    return best.numpy().astype(np.float32), report


# ------------------------------------------------------------------------------------ model files
def checkpoint_path(onnx_path: str | os.PathLike) -> Path:
    """The ``.pt`` checkpoint next to an ONNX model (``x.onnx`` -> ``x.pt``)."""
    path = Path(onnx_path)
    return path.with_name(path.name[: -len(".onnx")] + ".pt" if path.name.endswith(".onnx") else path.name + ".pt")


def _onnx_metadata(path: Path) -> dict[str, str]:
    import onnx  # noqa: PLC0415

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for a file that is not a model
        raise AddInstrumentError(f"model file {path} is not a readable ONNX model: {exc}") from exc
    return {entry.key: entry.value for entry in proto.metadata_props}


def model_instruments(onnx_path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``(all instrument names, names added by this module)`` of an ONNX model v3 file.

    Raises
    ------
    AddInstrumentError
        The file is missing, not a streaming SING model, or its metadata is broken.
    """
    path = Path(onnx_path)
    if not path.is_file():
        raise AddInstrumentError(f"model file {path} does not exist; train model v3 with nsynth-train-v3, or pass "
                                 "--model")
    meta = _onnx_metadata(path)
    if meta.get("model") != "sing-streaming":
        raise AddInstrumentError(f"{path} is not a streaming SING model (metadata model={meta.get('model')!r})")
    try:
        names = list(json.loads(meta["instrument_names"]))
        added = list(json.loads(meta.get(ADDED_INSTRUMENTS_KEY, "[]")))
    except (KeyError, ValueError) as exc:
        raise AddInstrumentError(f"{path} has broken metadata ({exc}); re-export it") from None
    return names, added


def model_pitch_range(onnx_path: str | os.PathLike) -> tuple[int, int]:
    """``(pitch_min_midi, pitch_max_midi)`` an ONNX model was trained on (its metadata; 36-84 if absent).

    Raises
    ------
    AddInstrumentError
        The file is missing or not an ONNX model.
    """
    path = Path(onnx_path)
    if not path.is_file():
        raise AddInstrumentError(f"model file {path} does not exist")
    meta = _onnx_metadata(path)
    try:
        return int(meta["pitch_min_midi"]), int(meta["pitch_max_midi"])
    except (KeyError, ValueError):
        return 36, 84


def output_paths(out_path: str | os.PathLike) -> dict[str, Path]:
    """What :func:`add_instrument_to_model` writes for ``out_path``: ``onnx``, ``replay`` and ``checkpoint``."""
    from nsynth_live.runtime.sing_onnx import replay_path  # noqa: PLC0415

    out = Path(out_path)
    return {"onnx": out, "replay": replay_path(out), "checkpoint": checkpoint_path(out)}


def check_can_add(onnx_path: str | os.PathLike, out_path: str | os.PathLike | None, name: str, *,
                  force: bool = False) -> dict[str, Path]:
    """Refuse, before any fitting, what :func:`add_instrument_to_model` would refuse.

    Returns
    -------
    dict
        The files that will be written (:func:`output_paths`).

    Raises
    ------
    AddInstrumentError
        An unsafe name; a missing model or checkpoint; ``out_path`` not ending in ``.onnx``.
    AddInstrumentRefused
        (an AddInstrumentError) ``name`` is one of the model's trained instruments (never replaced),
        or an added one and ``force`` is False; or ``out_path`` is another model whose files exist
        and ``force`` is False.
    """
    check_instrument_name(name)
    source = Path(onnx_path)
    names, added = model_instruments(source)
    if not checkpoint_path(source).is_file():
        raise AddInstrumentError(f"checkpoint {checkpoint_path(source)} does not exist: adding an instrument needs the "
                                 f"model's .pt next to {source.name} (nsynth-train-v3 writes both)")
    added = _added_names(source, names, added)
    out = source if out_path is None else Path(out_path)
    if not out.name.endswith(".onnx") or out.name.endswith(".replay.onnx"):
        raise AddInstrumentError(f"--out {out} must end in .onnx (and not .replay.onnx)")
    if name in names and name not in added:
        raise AddInstrumentRefused(f"{name!r} is one of the instruments {source.name} was trained on; it is never "
                                 "replaced: choose another name")
    if name in names and not force:
        raise AddInstrumentRefused(f"{source.name} already has an added instrument {name!r}; pass --force to replace it, "
                                 "or choose another name")
    paths = output_paths(out)
    if not _same_file(out, source):
        existing = [p for p in paths.values() if p.exists()]
        if existing and not force:
            raise AddInstrumentRefused(f"{existing[0]} exists; pass --force to overwrite it, or choose another --out")
    return paths


def _added_names(onnx_path: Path, names: list[str], added: list[str]) -> list[str]:
    """``added`` (the ONNX file's list) and those the checkpoint lists that the ONNX file has (a file
    re-exported from the checkpoint by ``export_sing_onnx`` forgets them)."""
    from_checkpoint = _checkpoint_payload(onnx_path)["extra"].get(ADDED_INSTRUMENTS_KEY, [])
    return added + [n for n in from_checkpoint if n in names and n not in added]


def trained_instrument_rows(onnx_path: str | os.PathLike) -> list[int]:
    """Indices of the instruments a model was trained on (all but those this module added), in the
    order of its instrument table.

    Raises
    ------
    AddInstrumentError
        The model or its checkpoint is missing or unreadable.
    """
    source = Path(onnx_path)
    names, added = model_instruments(source)
    added = _added_names(source, names, added)
    return [index for index, name in enumerate(names) if name not in added]


def _checkpoint_payload(onnx_path: Path) -> dict:
    """The checkpoint next to ``onnx_path``, read and checked (:func:`~nsynth_live.models.checkpoint.load_checkpoint`).

    Raises
    ------
    AddInstrumentError
        It is missing, corrupt or not a SING checkpoint.
    """
    from nsynth_live.models.checkpoint import SING_MODEL_NAME, CheckpointError, load_checkpoint  # noqa: PLC0415

    try:
        return load_checkpoint(checkpoint_path(onnx_path), model=SING_MODEL_NAME)
    except (CheckpointError, FileNotFoundError) as exc:
        raise AddInstrumentError(str(exc)) from None


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def add_instrument_to_model(onnx_path: str | os.PathLike, out_path: str | os.PathLike | None, name: str,
                            embedding: np.ndarray, *, force: bool = False) -> dict[str, Path]:
    """Write model ``onnx_path`` with instrument ``name`` (embedding ``embedding``) added, to ``out_path``.

    Written, each under a temporary name in its folder and renamed when all are complete
    (:func:`nsynth_live.fileio.atomic_output`): ``out_path`` (a copy of the ONNX file whose metadata
    lists ``name`` last with its embedding, plus ``added_instruments``; graph and weights unchanged),
    its replay graph (copied; unchanged in place) and the checkpoint ``<out>.pt`` (the instrument
    table grown by one row, ``num_instruments`` + 1). Replacing an added instrument (``force``) keeps
    its position. Before the renames, the new ONNX file passes :func:`nsynth_live.runtime.sing_onnx.load_synth`'s
    integrity checks (with a test note of the new instrument) and the checkpoint loads.

    Parameters
    ----------
    onnx_path : path
        Model v3 ONNX file; its checkpoint ``<stem>.pt`` must be next to it.
    out_path : path or None
        Destination ``.onnx``; None or ``onnx_path``: in place.
    name : str
        Safe instrument name (:func:`check_instrument_name`).
    embedding : (instrument_dims,) float32
    force : bool
        Replace an added instrument of the same name, or overwrite another model at ``out_path``.

    Returns
    -------
    dict
        The written paths, ``onnx``, ``replay`` (absent when the source has no replay graph) and ``checkpoint``.

    Raises
    ------
    AddInstrumentError
        Everything :func:`check_can_add` refuses; an embedding of the wrong shape or not finite; an
        ONNX file and checkpoint that disagree on the instruments.
    nsynth_live.models.checkpoint.CheckpointError
        The checkpoint is corrupt or not a SING checkpoint.
    """
    import onnx  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from nsynth_live.fileio import atomic_output, remove_stale_temporaries  # noqa: PLC0415
    from nsynth_live.models.checkpoint import load_sing  # noqa: PLC0415
    from nsynth_live.runtime.sing_onnx import load_synth, replay_path  # noqa: PLC0415

    source = Path(onnx_path)
    paths = check_can_add(source, out_path, name, force=force)
    in_place = _same_file(paths["onnx"], source)
    proto = onnx.load(str(source))
    meta = {entry.key: entry.value for entry in proto.metadata_props}
    names = list(json.loads(meta["instrument_names"]))
    added = list(json.loads(meta.get(ADDED_INSTRUMENTS_KEY, "[]")))
    embeddings = np.asarray(json.loads(meta["instrument_embeddings"]), dtype=np.float64)
    config = json.loads(meta["config"])
    row = np.asarray(embedding, dtype=np.float64).reshape(-1)
    if row.shape != (embeddings.shape[1],) or not np.all(np.isfinite(row)):
        raise AddInstrumentError(f"the embedding must be {embeddings.shape[1]} finite numbers, got shape "
                                 f"{np.shape(embedding)}")
    payload = _checkpoint_payload(source)
    table_key = "sequence_generator.instrument_table.weight"
    table = payload["state_dict"].get(table_key)
    pt_names = list(payload["extra"].get("instrument_names", []))
    pt_added = list(payload["extra"].get(ADDED_INSTRUMENTS_KEY, []))
    added += [n for n in pt_added if n in names and n not in added]  # see _added_names
    extra_rows = pt_names[len(names):]
    if (table is not None and extra_rows and pt_names[: len(names)] == names and set(extra_rows) <= set(pt_added)
            and table.shape[0] == len(pt_names)):
        # a run killed between its renames (the checkpoint is renamed before the ONNX file): the ONNX
        # file, what the player reads, decides; the checkpoint's extra rows are dropped
        table, pt_names = table[: len(names)], names
    if table is None or pt_names != names or not np.allclose(table.double().numpy(), embeddings, atol=1e-5):
        raise AddInstrumentError(f"{source.name} and {checkpoint_path(source).name} disagree on the instruments "
                                 "(another model, or an interrupted earlier run): re-export the ONNX file from the "
                                 "checkpoint")
    if name in names:  # an added instrument, replaced (check_can_add required force)
        index = names.index(name)
        embeddings[index] = row
        table = table.clone()
        table[index] = torch.from_numpy(row.astype(np.float32))
    else:
        names.append(name)
        added.append(name)
        embeddings = np.concatenate([embeddings, row[None]])
        table = torch.cat([table, torch.from_numpy(row.astype(np.float32))[None]])
    config["num_instruments"] = len(names)
    meta.update({
        "instrument_names": json.dumps(names),
        "instrument_embeddings": json.dumps(embeddings.round(7).tolist()),
        "config": json.dumps(config),
        ADDED_INSTRUMENTS_KEY: json.dumps(added),
    })
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    state_dict = dict(payload["state_dict"])
    state_dict[table_key] = table
    payload_config = dict(payload["config"])
    payload_config["num_instruments"] = len(names)
    extra = dict(payload["extra"])
    extra.update({"instrument_names": names, ADDED_INSTRUMENTS_KEY: added})

    folders = {p.parent for p in paths.values()}
    for folder in folders:
        remove_stale_temporaries(folder, names=[p.name for p in paths.values()])
    source_replay = replay_path(source)
    written = dict(paths)
    with ExitStack() as stack:
        onnx_tmp = stack.enter_context(atomic_output(paths["onnx"]))
        onnx.save(proto, str(onnx_tmp))
        check = load_synth(onnx_tmp)  # integrity checks, a test note of the first and the new instrument
        if check.spec.instrument_names[-1] != names[-1]:
            raise AddInstrumentError(f"internal error: {onnx_tmp} does not list {names[-1]!r} last")
        del check
        pt_tmp = stack.enter_context(atomic_output(paths["checkpoint"]))
        # the loaded payload, of the one format load_checkpoint accepts, with the grown table
        torch.save({**payload, "config": payload_config, "state_dict": state_dict, "extra": extra}, pt_tmp)
        load_sing(pt_tmp)  # loads: the config and the grown table agree
        if not in_place:
            if source_replay.is_file():
                replay_tmp = stack.enter_context(atomic_output(paths["replay"]))
                shutil.copyfile(source_replay, replay_tmp)
        if not source_replay.is_file():
            written.pop("replay")
    if not source_replay.is_file() and not in_place:
        paths["replay"].unlink(missing_ok=True)  # a stale one of the model replaced at --out (force checked it)
    return written
