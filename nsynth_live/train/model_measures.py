"""Quality figures of a streaming synth against the SoundFont notes it was trained on (issue 17, model v3).

A model trained on the SoundFont dataset (:mod:`nsynth_live.data.soundfont`) knows instruments named
``<family>_<source>_<nnn>``, ``nnn`` the index into :data:`DEFAULT_GM_INSTRUMENTS`. For each
(instrument, pitch) at one velocity, :func:`measure_model` renders

* the model's note: ``min(4 s, what its time table allows)`` from a fresh state
  (:func:`nsynth_live.runtime.notes.render_notes`, the loop behind ``render_note``), at the model's
  sample rate (everything is read from ``synth.spec``, so a 48-kHz model with another hop works);
* the *source* note: FluidSynth rendering the same GM program (:func:`render_instrument_notes`), 4 s
  with the key released at 3 s, at :data:`SOURCE_SAMPLE_RATE` (48 kHz: the full band, so the
  energy above 8 kHz is measurable, and no aliasing);
* the *dataset* note: the same note as the training set has it, rendered at the model's rate with
  the dataset's config. Rendering that instrument's whole dataset (every pitch and velocity, about
  1 s of CPU) also gives the dataset's per-instrument gain (its loudest note peaks at -1 dBFS),
  which is applied to the source and dataset notes, so that their levels are the model's targets.

and measures both with :mod:`nsynth_live.functional.measures` (definitions: ``docs/measures.md``).
The result is one JSON-ready dict; :func:`format_report` prints it. The benchmark
``benchmarks/model_measures.py`` is a thin command line over these two functions.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from nsynth_live.constants import (
    NSYNTH_NOTE_OFF_SECONDS, NSYNTH_NOTE_SAMPLES, NSYNTH_SAMPLE_RATE, NSYNTH_VELOCITIES,
)
from nsynth_live.data.nsynth import make_instrument_str
from nsynth_live.data.soundfont import (
    DEBIAN_GM_SOUNDFONT,
    DEFAULT_GM_INSTRUMENTS,
    GMInstrument,
    SoundFontDatasetConfig,
    render_instrument_notes,
)
from nsynth_live.functional.measures import (
    SPECTRAL_LOSS_SAMPLE_RATE,
    band_energy_db,
    held_level_range_db,
    log_mel_spectrogram_db,
    nearest_source_identity,
    note_level_db,
    off_harmonic_energy_share,
    partial_deviations_cents,
    refined_f0_hz,
    spectral_loss_16k,
)
from nsynth_live.functional.midi import cents_between, midi_to_hz

MODEL_MEASURES_FORMAT_VERSION = 1  # of the dict measure_model returns (and the benchmark's --json)
SOURCE_SAMPLE_RATE = 48_000  # Hz: FluidSynth renders the source notes at full band
NOTE_SECONDS = NSYNTH_NOTE_SAMPLES / NSYNTH_SAMPLE_RATE  # 4 s per note, NSynth protocol
NOTE_OFF_SECONDS = NSYNTH_NOTE_OFF_SECONDS  # 3 s, NSynth protocol
TUNING_TOLERANCE_CENTS = 20.0  # a note within this of its MIDI pitch counts as in tune
PARTIAL_HARMONICS = 4  # partial deviations: median |cents| over harmonics 1..4
HIGH_BAND_HZ = 8_000.0  # Hz: energy above it (a 16-kHz model has none)
INHARMONIC_FAMILIES = frozenset({"mallet", "drums"})  # no partial-deviation figures (bars, not strings)
IDENTITY_PITCHES = (48, 60, 72)  # MIDI: notes compared for the identity figure
IDENTITY_VELOCITY = 100
IDENTITY_SPAN_SECONDS = (0.0, NOTE_OFF_SECONDS)  # the held 3 s, note-on to note-off
IDENTITY_LEVEL_DB = -20.0  # dB RMS every note is scaled to for the "timbre" identity
IDENTITY_RANGE_DB = 40.0  # dB kept under each spectrogram's loudest cell for the "timbre" identity
MODEL_BATCH_VOICES = 16  # notes stepped together (the protocol gives the same audio at any batch size)


def gm_instrument_of(instrument_str: str) -> tuple[int, GMInstrument]:
    """The :data:`DEFAULT_GM_INSTRUMENTS` entry a model instrument name stands for.

    Parameters
    ----------
    instrument_str : str
        ``<family>_<source>_<nnn>`` (:func:`nsynth_live.data.nsynth.make_instrument_str`), e.g.
        ``"organ_acoustic_005"``.

    Returns
    -------
    (index, GMInstrument)

    Raises
    ------
    ValueError
        If the name has no 3-digit number, the number is not an index of the default GM
        instruments, or that instrument's family and source give another name.
    """
    head, _, number = instrument_str.rpartition("_")
    if not (head and len(number) == 3 and number.isdigit()):
        raise ValueError(f"instrument {instrument_str!r} is not a '<family>_<source>_<nnn>' name")
    index = int(number)
    if index >= len(DEFAULT_GM_INSTRUMENTS):
        raise ValueError(f"instrument {instrument_str!r}: {index} is not one of the {len(DEFAULT_GM_INSTRUMENTS)} "
                         "default GM instruments the SoundFont dataset is built from")
    instrument = DEFAULT_GM_INSTRUMENTS[index]
    expected = make_instrument_str(instrument.family, instrument.source, index)
    if expected != instrument_str:
        raise ValueError(f"instrument {instrument_str!r}: GM instrument {index} ({instrument.gm_name}) is "
                         f"{expected!r}; the model was not trained on the default SoundFont dataset")
    return index, instrument


def default_dataset_config(spec, *, soundfont_path: str = DEBIAN_GM_SOUNDFONT) -> SoundFontDatasetConfig:
    """The dataset config a model of ``spec`` was trained on, as ``export/train_sing.py`` builds it.

    :class:`SoundFontDatasetConfig`'s defaults at the model's sample rate (4-s notes, key off at
    3 s) and pitch range.
    """
    sample_rate = int(spec.sample_rate)
    return SoundFontDatasetConfig(soundfont_path=soundfont_path, sample_rate=sample_rate,
                                  note_samples=int(round(NOTE_SECONDS * sample_rate)),
                                  pitch_min_midi=int(spec.pitch_min_midi), pitch_max_midi=int(spec.pitch_max_midi))


def render_dataset_instrument(dataset_config: SoundFontDatasetConfig, index: int) -> tuple[float, dict]:
    """Render one instrument's dataset notes; its gain and notes as the training set has them.

    Parameters
    ----------
    dataset_config : SoundFontDatasetConfig
        The training set's config (:func:`default_dataset_config`); its ``instruments`` are ignored.
    index : int
        Index into :data:`DEFAULT_GM_INSTRUMENTS`.

    Returns
    -------
    gain : float
        Linear gain the dataset applies to this instrument (``build_soundfont_dataset``: its loudest
        note peaks at ``instrument_peak_dbfs``).
    notes : dict
        ``{(pitch_midi, velocity): audio}``, audio ``(note_samples,)`` float32 at the dataset's rate,
        gain applied (silent notes, which the dataset drops, included).
    """
    config = replace(dataset_config, instruments=(DEFAULT_GM_INSTRUMENTS[index],))
    rendered = render_instrument_notes(config, 0)
    peak = max(float(np.max(np.abs(audio))) for _, _, audio in rendered)
    gain = 10.0 ** (config.instrument_peak_dbfs / 20.0) / max(peak, 1e-9)
    return gain, {(pitch, velocity): (audio * gain).astype(np.float32) for pitch, velocity, audio in rendered}


def render_source_notes(index: int, pitches: Sequence[int], velocity: int, *, gain: float = 1.0,
                        sample_rate: int = SOURCE_SAMPLE_RATE,
                        soundfont_path: str = DEBIAN_GM_SOUNDFONT) -> dict[int, np.ndarray]:
    """FluidSynth notes of one GM instrument: 4 s, key released at 3 s, dry (the dataset's protocol).

    Parameters
    ----------
    index : int
        Index into :data:`DEFAULT_GM_INSTRUMENTS`.
    pitches : sequence of int
        MIDI notes (the range min..max is rendered, the others dropped).
    velocity : int
        MIDI velocity, one of NSynth's (25, 50, 75, 100, 127).
    gain : float
        Linear gain applied (the dataset's, from :func:`render_dataset_instrument`).
    sample_rate : int
        Hz.
    soundfont_path : str

    Returns
    -------
    dict
        ``{pitch_midi: audio}``, audio ``(4 * sample_rate,)`` float32.

    Raises
    ------
    FileNotFoundError, RuntimeError
        As :func:`render_instrument_notes` (no SoundFont, no FluidSynth).
    ValueError
        A velocity outside NSynth's set.
    """
    config = SoundFontDatasetConfig(
        soundfont_path=soundfont_path, instruments=(DEFAULT_GM_INSTRUMENTS[index],),
        pitch_min_midi=int(min(pitches)), pitch_max_midi=int(max(pitches)), velocities=(_check_velocity(velocity),),
        sample_rate=int(sample_rate), note_samples=int(round(NOTE_SECONDS * sample_rate)),
        note_off_seconds=NOTE_OFF_SECONDS)
    wanted = set(int(p) for p in pitches)
    return {pitch: (audio * gain).astype(np.float32) for pitch, _, audio in render_instrument_notes(config, 0)
            if pitch in wanted}


def _check_velocity(velocity) -> int:
    if int(velocity) != velocity or int(velocity) not in NSYNTH_VELOCITIES:
        raise ValueError(f"velocity must be one of the dataset's {NSYNTH_VELOCITIES} (the model learnt no other), "
                         f"got {velocity!r}")
    return int(velocity)


def model_note_samples(spec) -> int:
    """Samples of a model note: ``min(4 s, what the time table allows)`` at ``spec.sample_rate``."""
    allowed = (spec.time_steps - spec.preroll_steps) * spec.hop_length_samples
    return int(min(round(NOTE_SECONDS * spec.sample_rate), allowed))


def render_model_notes(synth, instrument_name: str, pitches: Sequence[int], velocity: float) -> dict[int, np.ndarray]:
    """The model's notes of one instrument, :func:`model_note_samples` long, from a fresh state each.

    Uses :func:`nsynth_live.runtime.notes.render_notes` (batches of voices) when the synth has the
    streaming protocol's ``step`` and ``new_state``, else ``synth.render_note`` note by note.

    Returns
    -------
    dict
        ``{pitch_midi: audio}``, audio ``(model_note_samples(spec),)`` float32 at ``spec.sample_rate``.

    Raises
    ------
    KeyError
        Unknown instrument. ValueError: a pitch outside the model's range, a bad velocity.
    """
    spec = synth.spec
    samples = model_note_samples(spec)
    hops = int(math.ceil(samples / spec.hop_length_samples))
    embedding = np.asarray(synth.instrument_embedding(instrument_name), dtype=np.float32)
    pitches = [int(p) for p in pitches]
    if hasattr(synth, "step") and hasattr(synth, "new_state"):
        from nsynth_live.runtime.notes import render_notes  # noqa: PLC0415

        audio = render_notes(synth, instrument_embeddings=np.tile(embedding, (len(pitches), 1)),
                             pitch_midi=np.asarray(pitches), velocity=float(velocity), n_note_steps=hops,
                             max_voices_per_batch=MODEL_BATCH_VOICES)
    else:
        audio = [synth.render_note(embedding, pitch_midi=p, velocity=float(velocity), hops=hops) for p in pitches]
    return {p: np.asarray(a[:samples], dtype=np.float32) for p, a in zip(pitches, audio)}


def measure_note(audio: np.ndarray, sample_rate: int, pitch_midi: int) -> dict:
    """Every per-note figure of one note (held span 0.1-2.5 s unless said otherwise).

    Returns
    -------
    dict
        ``f0_hz`` (:func:`refined_f0_hz`, YIN-seeded; None if unpitched), ``tuning_cents`` (vs the
        MIDI pitch), ``partial_cents`` (harmonics 1..4 vs the note's own f0), ``level_db``,
        ``held_range_db`` (0.3-2.5 s), ``above_8khz_db`` (whole note; None when the rate has no band
        above 8 kHz), ``off_harmonic_share`` (vs the note's own f0, or the MIDI pitch's when
        unpitched). Non-finite values are None (JSON).
    """
    f0 = refined_f0_hz(audio, sample_rate)
    pitched = math.isfinite(f0)
    return _json_safe({
        "f0_hz": f0,
        "tuning_cents": float(cents_between(f0, midi_to_hz(pitch_midi))) if pitched else None,
        "partial_cents": [float(c) for c in partial_deviations_cents(audio, sample_rate, f0,
                                                                     harmonics=PARTIAL_HARMONICS)],
        "level_db": note_level_db(audio, sample_rate),
        "held_range_db": held_level_range_db(audio, sample_rate),
        "above_8khz_db": band_energy_db(audio, sample_rate, above_hz=HIGH_BAND_HZ)
        if sample_rate / 2 > HIGH_BAND_HZ else None,
        "off_harmonic_share": off_harmonic_energy_share(
            audio, sample_rate, f0 if pitched else float(midi_to_hz(pitch_midi))),
    })


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _finite(values) -> np.ndarray:
    array = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    return array[np.isfinite(array)]


def _median(values) -> float | None:
    array = _finite(values)
    return float(np.median(array)) if array.size else None


def _side_summary(notes: list[dict], *, harmonic: bool) -> dict:
    """Figures over notes of one side (model or source)."""
    tuning = np.asarray([abs(n["tuning_cents"]) if n["tuning_cents"] is not None else np.inf for n in notes])
    levels = _finite(n["level_db"] for n in notes)
    partials = [abs(c) for n in notes for c in n["partial_cents"] if c is not None] if harmonic else []
    return _json_safe({
        "notes": len(notes),
        "unpitched": int(np.isinf(tuning).sum()),
        "tuning_share_within_20_cents": float(np.mean(tuning <= TUNING_TOLERANCE_CENTS)) if notes else None,
        "tuning_median_abs_cents": float(np.median(tuning)) if notes else None,  # inf (None) if most unpitched
        "partial_median_abs_cents": _median(partials) if harmonic else None,
        "level_mean_db": float(np.mean(levels)) if levels.size else None,
        "level_std_db": float(np.std(levels)) if levels.size > 1 else None,
        "level_range_db": float(np.ptp(levels)) if levels.size > 1 else None,
        "held_range_median_db": _median(n["held_range_db"] for n in notes),
        "above_8khz_median_db": _median(n["above_8khz_db"] for n in notes),
        "off_harmonic_median_share": _median(n["off_harmonic_share"] for n in notes),
    })


def _instrument_summary(notes: list[dict], *, harmonic: bool) -> dict:
    model = _side_summary([n["model"] for n in notes], harmonic=harmonic)
    source = _side_summary([n["source"] for n in notes], harmonic=harmonic)
    level_difference = _median((n["model"]["level_db"] - n["source"]["level_db"]) for n in notes
                               if n["model"]["level_db"] is not None and n["source"]["level_db"] is not None)
    above = [n["model"]["above_8khz_db"] - n["source"]["above_8khz_db"] for n in notes
             if n["model"]["above_8khz_db"] is not None and n["source"]["above_8khz_db"] is not None]
    return _json_safe({
        "model": model,
        "source": source,
        "level_difference_median_db": level_difference,
        "above_8khz_difference_median_db": _median(above),
        "spectral_loss_16k_mean": _mean(n["spectral_loss_16k"] for n in notes),
        "spectral_loss_16k_vs_dataset_mean": _mean(n["spectral_loss_16k_vs_dataset"] for n in notes),
    })


def _mean(values) -> float | None:
    array = _finite(values)
    return float(np.mean(array)) if array.size else None


def _resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate:
        return np.asarray(audio, dtype=np.float64)
    import soxr  # noqa: PLC0415

    return soxr.resample(np.asarray(audio, dtype=np.float64), from_rate, to_rate, quality="HQ")


def _same_length(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(a.shape[0], b.shape[0])
    return a[:n], b[:n]


def measure_model(synth, instruments: Sequence[str], pitches: Sequence[int], velocity: int, *,
                  soundfont_path: str = DEBIAN_GM_SOUNDFONT, source_sample_rate: int = SOURCE_SAMPLE_RATE,
                  dataset_config: SoundFontDatasetConfig | None = None,
                  identity_instruments: Sequence[str] | None = None,
                  identity_pitches: Sequence[int] = IDENTITY_PITCHES,
                  progress: Callable[[str], None] | None = None) -> dict:
    """Measure a model's notes against the SoundFont notes of the same instruments.

    Parameters
    ----------
    synth : StreamingSynth
        E.g. :func:`nsynth_live.runtime.sing_onnx.load_synth`; only ``spec``,
        ``instrument_embedding`` and ``step``/``new_state`` (or ``render_note``) are used.
    instruments : sequence of str
        Model instrument names (``spec.instrument_names``) measured note by note.
    pitches : sequence of int
        MIDI notes, inside the model's range.
    velocity : int
        MIDI velocity of every measured note, one of the dataset's (25, 50, 75, 100, 127).
    soundfont_path : str
        The SoundFont the dataset was rendered from.
    source_sample_rate : int
        Hz of the source notes (48000: full band).
    dataset_config : SoundFontDatasetConfig, optional
        The training set's config; default :func:`default_dataset_config` (the recipe's).
    identity_instruments : sequence of str, optional
        Instruments of the identity figure; default every instrument of the model. Empty: no
        identity figure.
    identity_pitches : sequence of int
        MIDI notes of the identity figure, at velocity :data:`IDENTITY_VELOCITY`.
    progress : callable(str), optional
        Called with a line of progress per instrument.

    Returns
    -------
    dict
        ``format_version``; ``model`` (rate, hop, note length rendered); ``source``; ``velocity``,
        ``pitches``; ``instruments``: per name, its GM program, ``harmonic`` (not a mallet), the
        dataset gain, ``notes`` (per pitch: ``model`` and ``source`` figures of :func:`measure_note`,
        ``spectral_loss_16k`` against the source note and ``spectral_loss_16k_vs_dataset`` against
        the dataset's note when the velocity is one of the dataset's) and ``summary``; ``overall``:
        the same summary over every note (partial deviations over harmonic instruments only),
        plus the median over instruments of the per-instrument level std and range;
        ``identity``: for ``"as_is"`` and ``"timbre"`` (see ``_identity``), the log-mel distance
        matrix (rows: model instruments, columns: their dataset notes at the model's rate, mean
        over ``identity_pitches``), the nearest column of each row and how many are their own
        (None without identity instruments). Non-finite numbers are None.

    Raises
    ------
    ValueError
        Unknown instrument names, names that are not default GM instruments, pitches outside the
        model's range, a bad velocity.
    FileNotFoundError, RuntimeError
        No SoundFont or no FluidSynth.
    """
    spec = synth.spec
    say = progress or (lambda line: None)
    known = set(spec.instrument_names)
    identity_instruments = list(spec.instrument_names if identity_instruments is None else identity_instruments)
    for name in list(instruments) + identity_instruments:
        if name not in known:
            raise ValueError(f"instrument {name!r} is not one of the model's: {sorted(known)}")
        gm_instrument_of(name)
    pitches = sorted(set(int(p) for p in pitches))
    identity_pitches = sorted(set(int(p) for p in identity_pitches))
    for p in pitches + identity_pitches:
        if not spec.pitch_min_midi <= p <= spec.pitch_max_midi:
            raise ValueError(f"pitch {p} is outside the model's range {spec.pitch_min_midi}..{spec.pitch_max_midi}")
    if not pitches:
        raise ValueError("give at least one pitch")
    velocity = _check_velocity(velocity)
    if dataset_config is None:
        dataset_config = default_dataset_config(spec, soundfont_path=soundfont_path)
    model_rate = int(spec.sample_rate)
    dataset_rate = int(dataset_config.sample_rate)
    identity_notes: dict[str, dict] = {}  # name -> {"model": {pitch: audio}, "dataset": {pitch: audio}}

    def keep_identity(name, model_notes, dataset_notes):
        if name in identity_instruments:
            identity_notes[name] = {
                "model": {p: model_notes[p] for p in identity_pitches if p in model_notes},
                "dataset": {p: dataset_notes[(p, IDENTITY_VELOCITY)] for p in identity_pitches
                            if (p, IDENTITY_VELOCITY) in dataset_notes},
            }

    per_instrument = {}
    for number, name in enumerate(instruments, start=1):
        index, gm = gm_instrument_of(name)
        say(f"[{number}/{len(instruments)}] {name} ({gm.gm_name}): rendering the dataset, source and model notes")
        gain, dataset_notes = render_dataset_instrument(dataset_config, index)
        sources = render_source_notes(index, pitches, velocity, gain=gain, sample_rate=source_sample_rate,
                                      soundfont_path=dataset_config.soundfont_path)
        for_identity = name in identity_instruments and velocity == IDENTITY_VELOCITY
        model_notes = render_model_notes(synth, name, sorted(set(pitches) | set(identity_pitches))
                                         if for_identity else pitches, velocity)
        harmonic = gm.family not in INHARMONIC_FAMILIES
        notes = []
        for pitch in pitches:
            model, source = model_notes[pitch], sources[pitch]
            dataset_note = dataset_notes.get((pitch, velocity))
            # SING's loss at 16 kHz over the common length (4 s unless the model's notes are shorter)
            model_16k = _resample(model, model_rate, SPECTRAL_LOSS_SAMPLE_RATE)
            loss_vs_source = spectral_loss_16k(
                *_same_length(model_16k, _resample(source, source_sample_rate, SPECTRAL_LOSS_SAMPLE_RATE)),
                SPECTRAL_LOSS_SAMPLE_RATE)
            loss_vs_dataset = None if dataset_note is None else spectral_loss_16k(
                *_same_length(model_16k, _resample(dataset_note, dataset_rate, SPECTRAL_LOSS_SAMPLE_RATE)),
                SPECTRAL_LOSS_SAMPLE_RATE)
            notes.append(_json_safe({
                "pitch": pitch,
                "model": measure_note(model, model_rate, pitch),
                "source": measure_note(source, source_sample_rate, pitch),
                "spectral_loss_16k": loss_vs_source,
                "spectral_loss_16k_vs_dataset": loss_vs_dataset,
            }))
        per_instrument[name] = {
            "gm_program": gm.program, "gm_name": gm.gm_name, "family": gm.family, "harmonic": harmonic,
            "dataset_gain_db": 20.0 * math.log10(gain), "notes": notes,
            "summary": _instrument_summary(notes, harmonic=harmonic),
        }
        if for_identity:
            keep_identity(name, model_notes, dataset_notes)
        del dataset_notes, sources, model_notes

    identity = None
    if identity_instruments and identity_pitches:
        for number, name in enumerate(identity_instruments, start=1):
            if name in identity_notes:
                continue
            say(f"[identity {number}/{len(identity_instruments)}] {name}: rendering notes at MIDI "
                f"{', '.join(map(str, identity_pitches))}, velocity {IDENTITY_VELOCITY}")
            _, dataset_notes = render_dataset_instrument(dataset_config, gm_instrument_of(name)[0])
            keep_identity(name, render_model_notes(synth, name, identity_pitches, IDENTITY_VELOCITY), dataset_notes)
        identity = _identity(identity_instruments, identity_pitches, identity_notes, model_rate, dataset_rate)

    all_notes = [n for entry in per_instrument.values() for n in entry["notes"]]
    harmonic_notes = [n for entry in per_instrument.values() if entry["harmonic"] for n in entry["notes"]]
    overall = _instrument_summary(all_notes, harmonic=False)
    for side in ("model", "source"):
        overall[side]["partial_median_abs_cents"] = _side_summary(
            [n[side] for n in harmonic_notes], harmonic=True)["partial_median_abs_cents"]
        for key in ("level_std_db", "level_range_db"):
            overall[side][f"{key}_median_over_instruments"] = _median(
                entry["summary"][side][key] for entry in per_instrument.values())
    return _json_safe({
        "format_version": MODEL_MEASURES_FORMAT_VERSION,
        "model": {"sample_rate": model_rate, "hop_length_samples": int(spec.hop_length_samples),
                  "note_seconds": model_note_samples(spec) / model_rate,
                  "pitch_range_midi": [int(spec.pitch_min_midi), int(spec.pitch_max_midi)]},
        "source": {"soundfont": dataset_config.soundfont_path, "sample_rate": int(source_sample_rate),
                   "note_seconds": NOTE_SECONDS, "note_off_seconds": NOTE_OFF_SECONDS,
                   "dataset_sample_rate": dataset_rate,
                   "dataset_instrument_peak_dbfs": dataset_config.instrument_peak_dbfs},
        "velocity": velocity,
        "pitches": pitches,
        "instruments": per_instrument,
        "overall": overall,
        "identity": identity,
    })


def _spectrogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """:func:`log_mel_distance` of two spectrograms (over their common frames)."""
    frames = min(a.shape[1], b.shape[1])
    return float(np.mean(np.abs(a[:, :frames] - b[:, :frames])))


def _identity(names, pitches, notes, model_rate, dataset_rate) -> dict:
    """Nearest-own-source counts of every model instrument against every dataset one, two ways.

    Each note's 0-3 s span at the model's rate (dataset notes resampled when their rate differs);
    distances are log-mel distances (dB) averaged over the pitches. ``"as_is"``: the notes at their
    levels, the absolute -80 dB floor (:func:`log_mel_distance`'s defaults). ``"timbre"``: every note
    scaled to :data:`IDENTITY_LEVEL_DB` RMS and each spectrogram floored
    :data:`IDENTITY_RANGE_DB` under its own loudest cell: level (reported apart) and content far
    under the note (a noise floor between harmonics) do not decide.
    """
    def held(audio, rate, *, normalise):
        start, end = (int(round(s * rate)) for s in IDENTITY_SPAN_SECONDS)
        segment = np.asarray(audio[start:end], dtype=np.float64)
        rms = float(np.sqrt(np.mean(segment * segment)))
        return segment * (10.0 ** (IDENTITY_LEVEL_DB / 20.0) / rms) if normalise and rms > 0 else segment

    result = {"pitches": list(pitches), "velocity": IDENTITY_VELOCITY, "span_seconds": list(IDENTITY_SPAN_SECONDS),
              "instruments": list(names), "n_instruments": len(names)}
    for variant, normalise, range_db in (("as_is", False, None), ("timbre", True, IDENTITY_RANGE_DB)):
        # one spectrogram per note, then log_mel_distance's mean |difference| for every pair
        models = {n: {p: log_mel_spectrogram_db(held(a, model_rate, normalise=normalise), model_rate,
                                                range_db=range_db)
                      for p, a in notes[n]["model"].items()} for n in names}
        sources = {n: {p: log_mel_spectrogram_db(held(_resample(a, dataset_rate, model_rate), model_rate,
                                                      normalise=normalise), model_rate, range_db=range_db)
                       for p, a in notes[n]["dataset"].items()} for n in names}
        distances = np.full((len(names), len(names)), np.nan)
        for i, row in enumerate(names):
            for j, column in enumerate(names):
                values = [_spectrogram_distance(models[row][p], sources[column][p]) for p in pitches
                          if p in models[row] and p in sources[column]]
                if values:
                    distances[i, j] = float(np.mean(values))
        found = nearest_source_identity(distances)
        result[variant] = {
            "n_nearest_own": found.n_nearest_own,
            "nearest": {name: (names[j] if j >= 0 else None) for name, j in zip(names, found.nearest.tolist())},
            "log_mel_distance_db": distances.tolist(),
        }
    return _json_safe(result)


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------
def _fmt(value, spec: str = ".1f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _pair(summary: dict, key: str, spec: str = ".1f") -> str:
    return f"{_fmt(summary['model'][key], spec)} / {_fmt(summary['source'][key], spec)}"


def format_report(result: dict) -> str:
    """Plain-text tables of :func:`measure_model`'s result: one row per instrument, then overall.

    Each "a / b" cell is model / source. Columns: in tune (share within 20 cents), median |cents|,
    partials (median |cents| of harmonics 1-4 against the note's own f0; harmonic instruments only),
    level std and range over the pitches (dB), level model minus source (median dB), held-note range
    (median dB), energy above 8 kHz (median dB; "n/a" where the model's rate has no such band),
    off-harmonic share (median), spectral loss at 16 kHz against the source note (and against the
    dataset's note).
    """
    model = result["model"]
    lines = [
        f"model: {model['sample_rate']} Hz, hop {model['hop_length_samples']} samples, notes of "
        f"{model['note_seconds']:.3f} s; source: FluidSynth at {result['source']['sample_rate']} Hz, 4 s, "
        f"key off at 3 s, "
        f"levels as the dataset (loudest note of each instrument at "
        f"{result['source']['dataset_instrument_peak_dbfs']:g} dBFS); velocity {result['velocity']}, "
        f"{len(result['pitches'])} pitch{'es' if len(result['pitches']) != 1 else ''} "
        f"(MIDI {result['pitches'][0]}-{result['pitches'][-1]})",
        "cells 'a / b' are model / source",
        "",
    ]
    high_band = model["sample_rate"] / 2 > HIGH_BAND_HZ
    header = ("instrument", "in tune <=20c", "median |c|", "partials |c|", "level std dB", "level range dB",
              "level m-s dB", "held range dB", ">8 kHz dB", "off-harmonic", "SL16k src / data")
    rows = []
    entries = list(result["instruments"].items()) + [("overall", {"summary": result["overall"]})]
    for name, entry in entries:
        s = entry["summary"]
        if high_band:
            above = f"{_pair(s, 'above_8khz_median_db')} ({_fmt(s['above_8khz_difference_median_db'], '+.1f')})"
        else:
            above = f"n/a / {_fmt(s['source']['above_8khz_median_db'])}"
        level_keys = ("level_std_db", "level_range_db")
        if name == "overall":  # medians over instruments of the per-instrument figures
            level_keys = tuple(f"{k}_median_over_instruments" for k in level_keys)
        rows.append((
            name,
            _pair(s, "tuning_share_within_20_cents", ".0%"),
            _pair(s, "tuning_median_abs_cents"),
            _pair(s, "partial_median_abs_cents", ".2f"),
            _pair(s, level_keys[0]),
            _pair(s, level_keys[1]),
            _fmt(s["level_difference_median_db"], "+.1f"),
            _pair(s, "held_range_median_db"),
            above,
            _pair(s, "off_harmonic_median_share", ".3f"),
            f"{_fmt(s['spectral_loss_16k_mean'], '.4f')} / {_fmt(s['spectral_loss_16k_vs_dataset_mean'], '.4f')}",
        ))
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        lines.append("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    if not high_band:
        lines.append(f"> 8 kHz: not measurable for the model (its {model['sample_rate']} Hz rate ends at "
                     f"{model['sample_rate'] / 2:g} Hz: -inf); the source's figure is shown")
    identity = result.get("identity")
    if identity:
        lines += ["", f"identity (log-mel distance, MIDI {', '.join(map(str, identity['pitches']))}, velocity "
                      f"{identity['velocity']}, 0-3 s): model instruments nearest their own source, of "
                      f"{identity['n_instruments']}:"]
        for variant, what in (("as_is", "notes as they are (levels count, floor -80 dB)"),
                              ("timbre", f"levels equalised, {IDENTITY_RANGE_DB:g} dB under each note's peak kept")):
            found = identity[variant]
            wrong = [f"{k}->{v}" for k, v in found["nearest"].items() if v != k]
            others = f"; others nearest: {', '.join(wrong)}" if wrong else ""
            lines.append(f"  {what}: {found['n_nearest_own']}{others}")
    return "\n".join(lines)


BRIGHTNESS_PITCH = 60  # MIDI note of the velocity-brightness figure
BRIGHTNESS_SPAN_SECONDS = (0.05, 1.0)  # s: the attack and early sustain, where velocity shows most


def spectral_centroid_hz(audio: np.ndarray, sample_rate: int, *, span=BRIGHTNESS_SPAN_SECONDS) -> float:
    """Power-weighted mean frequency of a note's span (``librosa.feature.spectral_centroid`` over
    2048-sample frames, averaged with each frame's energy as weight), Hz; NaN for silence."""
    import librosa  # noqa: PLC0415

    start, end = (int(round(s * sample_rate)) for s in span)
    segment = np.asarray(audio[start:end], dtype=np.float32)
    if not np.any(segment):
        return float("nan")
    spectrum = np.abs(librosa.stft(segment, n_fft=2048, hop_length=512)) ** 2
    centroid = librosa.feature.spectral_centroid(S=np.sqrt(spectrum), sr=sample_rate)[0]
    weights = spectrum.sum(axis=0)
    return float(np.sum(centroid * weights) / max(float(np.sum(weights)), 1e-30))


def velocity_brightness(synth, instruments: Sequence[str], *, pitch_midi: int = BRIGHTNESS_PITCH,
                        soundfont_path: str = DEBIAN_GM_SOUNDFONT) -> dict:
    """Spectral centroid (Hz) and level (dB) of one note at each NSynth velocity, model and source.

    A real instrument played harder is louder and brighter; the figure shows whether the model learnt
    both. ``{name: {"velocities": [...], "model_centroid_hz": [...], "source_centroid_hz": [...],
    "model_level_db": [...], "source_level_db": [...]}}``, the source being the dataset's notes
    (FluidSynth, the training set's gain) at the model's rate.
    """
    spec = synth.spec
    dataset_config = default_dataset_config(spec, soundfont_path=soundfont_path)
    result = {}
    for name in instruments:
        index, _ = gm_instrument_of(name)
        _, dataset_notes = render_dataset_instrument(replace(dataset_config, pitch_min_midi=pitch_midi,
                                                             pitch_max_midi=pitch_midi), index)
        row = {"velocities": list(NSYNTH_VELOCITIES), "model_centroid_hz": [], "source_centroid_hz": [],
               "model_level_db": [], "source_level_db": []}
        for velocity in NSYNTH_VELOCITIES:
            model = render_model_notes(synth, name, [pitch_midi], velocity)[pitch_midi]
            source = dataset_notes[(pitch_midi, velocity)]
            row["model_centroid_hz"].append(spectral_centroid_hz(model, int(spec.sample_rate)))
            row["source_centroid_hz"].append(spectral_centroid_hz(source, int(dataset_config.sample_rate)))
            row["model_level_db"].append(note_level_db(model, int(spec.sample_rate)))
            row["source_level_db"].append(note_level_db(source, int(dataset_config.sample_rate)))
        result[name] = _json_safe(row)
    return result


def format_velocity_brightness(result: dict) -> str:
    """Plain-text table of :func:`velocity_brightness`: centroid and level per velocity, model / source."""
    lines = []
    for name, row in result.items():
        cells = [f"v{v}: {_fmt(m, '.0f')} / {_fmt(s, '.0f')} Hz, {_fmt(lm)} / {_fmt(ls)} dB"
                 for v, m, s, lm, ls in zip(row["velocities"], row["model_centroid_hz"], row["source_centroid_hz"],
                                            row["model_level_db"], row["source_level_db"])]
        lines.append(f"{name}: " + "; ".join(cells))
    return "\n".join(lines)
