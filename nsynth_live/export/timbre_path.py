"""A wavetable along a path across the timbre XY pad: one frame per point, rendered by a streaming synth.

Each point ``(x, y)`` of the path blends the four corner instrument embeddings bilinearly, a note
is rendered by stepping a :class:`~nsynth_live.runtime.protocol.StreamingSynth` (pre-roll steps
discarded, then ``time_index = preroll_steps + k`` for note hop ``k``), and one single-cycle frame
is cut from the note's steady part with the same harmonic projection as
:mod:`nsynth_live.export.wavetable`. The frames are phase-aligned along the path and normalised as
one table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nsynth_live.functional.interpolation import bilinear_corner_weights
from nsynth_live.export.wavetable import (
    DEFAULT_TABLE_PEAK,
    MAX_WAVETABLE_FRAMES,
    N_HARMONIC_BINS,
    Wavetable,
    align_phases,
    fit_harmonic_cycle,
    frames_from_harmonics,
    normalize_table,
)
from nsynth_live.functional.midi import cents_between, midi_to_hz
from nsynth_live.functional.pitch import NoStablePitchError, estimate_f0_hz, refine_f0_hz
from nsynth_live.runtime.notes import render_notes
from nsynth_live.runtime.protocol import StreamingSynth

N_CORNERS = 4  # corner order: (x, y) = (0, 0), (1, 0), (0, 1), (1, 1)
CORNER_XY = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0))


@dataclass(frozen=True)
class TimbrePathConfig:
    """Where in each rendered note the frame is cut, and how.

    Attributes
    ----------
    analysis_start_seconds : float
        Start of the steady part analysed, seconds after the first audible sample (SING notes are
        held 3 s; 0.5 s is past the attack).
    analysis_seconds : float
        Length of the analysed stretch, seconds; the frame is cut at its middle and the note's f0
        is checked over all of it.
    periods_per_frame : int
        Source periods fitted for the frame.
    peak : float
        Peak of the normalised table, linear, in (0, 1].
    pitch_tolerance_cents : float
        A note whose measured f0 is further than this from the MIDI pitch is refused.
    max_voices_per_batch : int
        Points rendered together as voices of one batched state (the protocol guarantees the same
        output whatever the batch size).
    """

    analysis_start_seconds: float = 0.5
    analysis_seconds: float = 0.25
    periods_per_frame: int = 4
    peak: float = DEFAULT_TABLE_PEAK
    pitch_tolerance_cents: float = 50.0
    max_voices_per_batch: int = 16

    def __post_init__(self):
        if not self.analysis_start_seconds >= 0:
            raise ValueError(f"analysis_start_seconds must be >= 0 s, got {self.analysis_start_seconds!r}")
        if not self.analysis_seconds > 0:
            raise ValueError(f"analysis_seconds must be > 0 s, got {self.analysis_seconds!r}")
        if not isinstance(self.periods_per_frame, (int, np.integer)) or not 1 <= self.periods_per_frame <= 32:
            raise ValueError(f"periods_per_frame must be an integer in 1..32, got {self.periods_per_frame!r}")
        if not 0 < self.peak <= 1:
            raise ValueError(f"peak must be in (0, 1], got {self.peak!r}")
        if not self.pitch_tolerance_cents > 0:
            raise ValueError(f"pitch_tolerance_cents must be > 0, got {self.pitch_tolerance_cents!r}")
        if not isinstance(self.max_voices_per_batch, (int, np.integer)) or self.max_voices_per_batch < 1:
            raise ValueError(f"max_voices_per_batch must be a positive integer, got {self.max_voices_per_batch!r}")


def parse_xy_path(text: str) -> np.ndarray:
    """Parse ``"x0,y0 x1,y1 ..."`` into an array of pad points.

    Returns
    -------
    (points, 2) float64
        Each point in ``[0, 1] x [0, 1]``.

    Raises
    ------
    ValueError
        On a malformed point, a coordinate outside [0, 1], no point, or more than 256 points.
    """
    points = []
    for token in text.split():
        parts = token.split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            points.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise ValueError(
                f"path point {token!r} is not 'x,y' (two numbers in 0..1 joined by a comma); "
                'write the path like "0,0 0.5,0.25 1,1"'
            ) from None
    xy = np.array(points, dtype=np.float64).reshape(-1, 2)
    _check_path(xy)
    return xy


def _check_path(xy: np.ndarray) -> None:
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] == 0:
        raise ValueError(f"path must have shape (points, 2) with at least one point, got {xy.shape}")
    if xy.shape[0] > MAX_WAVETABLE_FRAMES:
        raise ValueError(
            f"a path gives one frame per point; {xy.shape[0]} points is more than the {MAX_WAVETABLE_FRAMES}-frame "
            "limit; use fewer points"
        )
    if not np.all(np.isfinite(xy)) or xy.min() < 0 or xy.max() > 1:
        bad = xy[~np.all((xy >= 0) & (xy <= 1), axis=1)]
        raise ValueError(f"pad coordinates must lie in [0, 1], got points {bad.tolist()}")


def bilinear_embeddings(corner_embeddings, path_xy) -> np.ndarray:
    """Blend four corner embeddings bilinearly at each pad point.

    ``e(x, y) = (1-x)(1-y) e00 + x(1-y) e10 + (1-x) y e01 + x y e11``.

    Parameters
    ----------
    corner_embeddings : (4, embedding_dims) float
        Corners in the order (0, 0), (1, 0), (0, 1), (1, 1).
    path_xy : (points, 2) float
        Pad points in [0, 1] x [0, 1].

    Returns
    -------
    (points, embedding_dims) float32

    Raises
    ------
    ValueError
        On bad shapes or coordinates outside [0, 1].
    """
    corners = np.asarray(corner_embeddings, dtype=np.float64)
    if corners.ndim != 2 or corners.shape[0] != N_CORNERS:
        raise ValueError(
            f"corner_embeddings must have shape (4, embedding_dims) in the order (0,0), (1,0), (0,1), (1,1), "
            f"got {corners.shape}"
        )
    xy = np.asarray(path_xy, dtype=np.float64)
    _check_path(xy)
    return (bilinear_corner_weights(xy) @ corners).astype(np.float32)


def timbre_path_wavetable(
    synth: StreamingSynth,
    *,
    corner_embeddings,
    path_xy,
    pitch_midi: int,
    velocity: float = 100.0,
    config: TimbrePathConfig = TimbrePathConfig(),
) -> Wavetable:
    """One wavetable frame per point of a path across the timbre pad.

    Parameters
    ----------
    synth : StreamingSynth
        The model (e.g. ``nsynth_live.runtime.sing_onnx.load_synth(path)``).
    corner_embeddings : (4, embedding_dims) float
        Corner instruments in the order (0, 0), (1, 0), (0, 1), (1, 1).
    path_xy : (points, 2) float
        Pad points in [0, 1]^2, at most 256; the table has one frame per point, in path order.
    pitch_midi : int
        MIDI note rendered (a low note, MIDI 36-48, gives bright tables: harmonics < 8 kHz at 16 kHz).
    velocity : float
        MIDI velocity 1..127.
    config : TimbrePathConfig

    Returns
    -------
    Wavetable
        ``frames`` (points, 2048) float32; ``f0_hz`` the measured f0 of each note;
        ``positions_seconds`` the frame start inside each note.

    Raises
    ------
    NoStablePitchError
        A point's note has no stable pitch, or one further than ``pitch_tolerance_cents`` from
        ``pitch_midi`` (the message names the point).
    ValueError
        Bad shapes, coordinates, pitch, velocity, or an analysis window beyond the model's notes.
    """
    spec = synth.spec
    embeddings = bilinear_embeddings(corner_embeddings, path_xy)
    xy = np.asarray(path_xy, dtype=np.float64)
    sample_rate = spec.sample_rate
    expected_hz = float(midi_to_hz(pitch_midi))
    period = sample_rate / expected_hz  # samples
    analysis_start = int(round(config.analysis_start_seconds * sample_rate))
    analysis_samples = int(round(config.analysis_seconds * sample_rate))
    span = config.periods_per_frame * period
    if analysis_samples < span + 4 * period:
        raise ValueError(
            f"analysis_seconds={config.analysis_seconds} holds fewer than {config.periods_per_frame + 4} periods of "
            f"MIDI {pitch_midi} ({expected_hz:.2f} Hz); make it longer"
        )
    n_note_steps = int(np.ceil((analysis_start + analysis_samples) / spec.hop_length_samples))
    notes = render_notes(
        synth,
        instrument_embeddings=embeddings,
        pitch_midi=pitch_midi,
        velocity=velocity,
        n_note_steps=n_note_steps,
        max_voices_per_batch=config.max_voices_per_batch,
    )
    fmax_hz = min(sample_rate / 4, max(2 * expected_hz, 100.0))
    fmin_hz = max(expected_hz / 4, 20.0)
    coefficients = np.zeros((xy.shape[0], N_HARMONIC_BINS), dtype=np.complex128)
    f0 = np.empty(xy.shape[0])
    frame_start = analysis_start + (analysis_samples - span) / 2.0
    for i, note in enumerate(notes):
        steady = note[analysis_start : analysis_start + analysis_samples]
        try:
            measured = estimate_f0_hz(steady, sample_rate=sample_rate, fmin_hz=fmin_hz, fmax_hz=fmax_hz)
        except NoStablePitchError as error:
            raise NoStablePitchError(f"point {i} (x={xy[i, 0]:g}, y={xy[i, 1]:g}): {error}") from error
        offset = float(cents_between(measured, expected_hz))
        if abs(offset) > config.pitch_tolerance_cents:
            raise NoStablePitchError(
                f"no stable pitch at point {i} (x={xy[i, 0]:g}, y={xy[i, 1]:g}): the note sounds at {measured:.2f} Hz, "
                f"{offset:+.0f} cents from MIDI {pitch_midi} ({expected_hz:.2f} Hz), allowed "
                f"+-{config.pitch_tolerance_cents:g} cents"
            )
        f0[i] = refine_f0_hz(steady, sample_rate=sample_rate, f0_hz=measured)
        coefficients[i] = fit_harmonic_cycle(
            note, sample_rate=sample_rate, start_sample=frame_start, f0_hz=f0[i], periods=config.periods_per_frame
        )
    frames, gain = normalize_table(frames_from_harmonics(align_phases(coefficients)), peak=config.peak)
    return Wavetable(
        frames=frames, f0_hz=f0, positions_seconds=np.full(xy.shape[0], frame_start / sample_rate), gain=gain
    )
