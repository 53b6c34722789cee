"""Offline rendering: MIDI file -> events -> the live engine's ``render_hop`` in a loop -> WAV.

One code path, two clocks: this module drives exactly the :meth:`Engine.render_hop` that the
realtime runner drives from the device clock, so tests of the offline path test the live path.
Note-ons start at their own sample (a :class:`~nsynth_live.engine.events.Timed` event); other
events take effect at the start of the hop that holds their time (16 ms grid for SING).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nsynth_live.engine.midi import parse_midi_message
from nsynth_live.engine.events import NoteOn, Timed
from nsynth_live.fileio import atomic_output


class MidiFileError(ValueError):
    """A MIDI file could not be read (the message names the file)."""


def midi_file_events(path) -> list:
    """Timed engine events of a standard MIDI file (all tracks merged, tempo map applied).

    Parameters
    ----------
    path : str or Path
        A type 0 or 1 standard MIDI file.

    Returns
    -------
    list of (float, Event)
        ``(time_seconds, event)`` sorted by time; channel messages go through
        :func:`nsynth_live.engine.midi.parse_midi_message` (the live parser); meta and sysex are
        dropped.

    Raises
    ------
    MidiFileError
        If the file is missing or not a parseable MIDI file.
    """
    import mido

    path = Path(path)
    try:
        midi = mido.MidiFile(str(path))
        messages = list(midi)  # tempo-aware; msg.time = seconds since the previous message
    except FileNotFoundError as error:
        raise MidiFileError(f"MIDI file {path} does not exist") from error
    except Exception as error:  # mido raises OSError, EOFError, ValueError, KeyError, ...
        raise MidiFileError(f"cannot parse MIDI file {path}: {type(error).__name__}: {error}; "
                            f"expected a standard MIDI file (.mid, type 0 or 1)") from error
    events = []
    now = 0.0
    for message in messages:
        now += float(message.time)
        if message.is_meta or message.type == "sysex":
            continue
        event = parse_midi_message(message.bytes())
        if event is not None:
            events.append((now, event))
    return events


def render_events(engine, timed_events, *, tail_seconds: float = 2.0, progress: bool = False) -> np.ndarray:
    """Render timed events with the engine, faster than real time.

    Parameters
    ----------
    engine : Engine
        A fresh engine (its state carries over between calls).
    timed_events : iterable of (float, Event)
        Event times in seconds from the start; need not be sorted.
    tail_seconds : float
        Audio rendered after the last event (releases ring out), s >= 0.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    numpy.ndarray
        ``(frames, channels)`` float32 at ``engine.output_sample_rate``; includes the resampler's
        delay (``engine.resampler_delay_seconds``) at the start.
    """
    if not (isinstance(tail_seconds, (int, float)) and 0.0 <= tail_seconds <= 3600.0):
        raise ValueError(f"tail_seconds must be in [0, 3600] s, got {tail_seconds!r}")
    events = sorted(((float(t), e) for t, e in timed_events), key=lambda item: item[0])
    if any(not np.isfinite(t) or t < 0 for t, _ in events):
        raise ValueError("event times must be finite and >= 0 s")
    hop_seconds = engine.hop_seconds
    end_seconds = (events[-1][0] if events else 0.0) + tail_seconds
    n_hops = int(np.ceil(end_seconds / hop_seconds))
    hops = range(n_hops)
    if progress:
        from tqdm import tqdm

        hops = tqdm(hops, desc="render", unit="hop")
    blocks = []
    next_event = 0
    origin = engine.sample_position
    model_rate = engine.spec.sample_rate
    for hop in hops:
        # the events inside this hop: note-ons start at their own sample, the rest at the hop's start
        while next_event < len(events) and events[next_event][0] < (hop + 1) * hop_seconds:
            t, event = events[next_event]
            if isinstance(event, NoteOn):
                event = Timed(event, origin + int(round(t * model_rate)))
            engine.post(event)
            next_event += 1
        blocks.append(engine.render_hop())
    if not blocks:
        return np.zeros((0, engine.channels), dtype=np.float32)
    return np.concatenate(blocks, axis=0)


def write_wav_atomic(path, audio: np.ndarray, *, sample_rate: int, force: bool = False,
                     subtype: str = "PCM_16") -> Path:
    """Write ``audio`` to a WAV file atomically (``nsynth_live.fileio.atomic_output``: a temporary
    file in the same folder, then ``os.replace``; normal file permissions).

    Parameters
    ----------
    path : str or Path
        Destination ``.wav``.
    audio : (frames, channels) or (frames,) float array
        Samples in [-1, 1].
    sample_rate : int
        Hz.
    force : bool
        Overwrite an existing file.
    subtype : str
        soundfile subtype (``"PCM_16"``, ``"FLOAT"``, ...).

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``force`` is False.
    """
    import soundfile as sf

    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass force=True (--force) to overwrite it")
    with atomic_output(path, overwrite=True, suffix=".tmp.wav") as temporary:
        sf.write(temporary, np.asarray(audio, dtype=np.float32), int(sample_rate), subtype=subtype,
                 format="WAV")
    return path


def render_midi_file(engine, midi_path, *, output_path=None, tail_seconds: float = 2.0,
                     force: bool = False, progress: bool = False) -> np.ndarray:
    """Render a MIDI file with ``engine`` and optionally write it as a WAV (atomically).

    Returns the ``(frames, channels)`` float32 audio. Raises :class:`MidiFileError` for an
    unparseable file and FileExistsError if ``output_path`` exists without ``force``; the
    existence check happens before rendering so no work is lost.
    """
    if output_path is not None and Path(output_path).exists() and not force:
        raise FileExistsError(f"{output_path} exists; pass force=True (--force) to overwrite it")
    audio = render_events(engine, midi_file_events(midi_path), tail_seconds=tail_seconds,
                          progress=progress)
    if output_path is not None:
        write_wav_atomic(output_path, audio, sample_rate=engine.output_sample_rate, force=force)
    return audio
