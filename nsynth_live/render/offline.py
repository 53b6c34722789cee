"""Offline rendering: MIDI file -> events -> the live engine's ``render_hop`` in a loop -> WAV.

One code path, two clocks: this module drives exactly the :meth:`Engine.render_hop` that the
realtime runner drives from the device clock, so tests of the offline path test the live path.
:func:`render_events_to_wav` streams hops to the file as they are rendered (constant memory);
:func:`render_events` keeps the whole piece in memory (tests, short pieces).
Note-ons start at their own sample (a :class:`~nsynth_live.engine.events.Timed` event); other
events take effect at the start of the hop that holds their time (16 ms grid for SING).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from nsynth_live.engine.midi import parse_midi_message
from nsynth_live.engine.events import NoteOn, Timed
from nsynth_live.fileio import atomic_output, remove_stale_temporaries


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
        One line naming the file: missing, unreadable, empty, not a MIDI file (no ``MThd``),
        truncated, or damaged (mido's own error).
    """
    import mido

    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except FileNotFoundError as error:
        raise MidiFileError(f"MIDI file {path} does not exist") from error
    except OSError as error:
        raise MidiFileError(f"cannot read MIDI file {path}: {error.strerror or error}") from error
    if not head:
        raise MidiFileError(f"MIDI file {path} is empty (0 bytes)")
    if head[:4] == b"RIFF" and head[8:12] == b"RMID":
        raise MidiFileError(f"{path} is a RIFF MIDI file (RMID), which is not read here: save it as a standard "
                            f"MIDI file (.mid)")
    if head[:4] != b"MThd":
        raise MidiFileError(f"{path} is not a MIDI file: it starts with {head[:4]!r}, a standard MIDI file with b'MThd'")
    try:
        midi = mido.MidiFile(str(path))
        messages = list(midi)  # tempo-aware; msg.time = seconds since the previous message
    except EOFError as error:
        raise MidiFileError(f"MIDI file {path} is truncated: it ends inside its header or a track "
                            f"({path.stat().st_size} bytes)") from error
    except Exception as error:  # mido raises OSError, ValueError, KeyError, ...
        detail = " ".join(str(error).split()) or "no detail"
        raise MidiFileError(f"MIDI file {path} is damaged: {type(error).__name__}: {detail}") from error
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


def iter_render(engine, timed_events, *, tail_seconds: float = 2.0, progress: bool = False) -> Iterator[np.ndarray]:
    """Render timed events with the engine, faster than real time, one hop at a time.

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

    Yields
    ------
    numpy.ndarray
        Each hop's ``(frames, channels)`` float32 at ``engine.output_sample_rate`` (the first hops
        hold the resampler's delay, ``engine.resampler_delay_seconds``). Nothing but the engine and
        the event list is kept between hops: memory stays flat whatever the piece's length.

    Raises
    ------
    ValueError
        If ``tail_seconds`` is out of [0, 3600] or an event time is negative or not finite.
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
        yield engine.render_hop()


def render_events(engine, timed_events, *, tail_seconds: float = 2.0, progress: bool = False) -> np.ndarray:
    """:func:`iter_render`'s hops concatenated: ``(frames, channels)`` float32 (the whole piece in
    memory: for long pieces write with :func:`render_events_to_wav`)."""
    blocks = list(iter_render(engine, timed_events, tail_seconds=tail_seconds, progress=progress))
    if not blocks:
        return np.zeros((0, engine.channels), dtype=np.float32)
    return np.concatenate(blocks, axis=0)


WAV_MAX_BYTES = 2**32 - 1 - 1024  # a RIFF WAV's size field is 32 bits; beyond it the file is RF64


def render_events_to_wav(engine, timed_events, path, *, tail_seconds: float = 2.0, progress: bool = False,
                         force: bool = False, subtype: str = "FLOAT") -> tuple[Path, int]:
    """Render straight to a WAV file, hop by hop, in constant memory, atomically.

    The samples are exactly :func:`render_events`'s. They are written as they are rendered into a
    temporary file in the destination's folder (``fileio.atomic_output``), renamed onto ``path``
    at the end; a killed render leaves no file under ``path``. A render longer than a RIFF WAV can
    hold (4 GiB: 3.1 h of stereo float at 48 kHz) is written as RF64, which soundfile, sox and
    DAWs read as WAV.

    Parameters
    ----------
    engine, timed_events, tail_seconds, progress
        As for :func:`iter_render`.
    path : str or Path
        Destination ``.wav``.
    force : bool
        Overwrite an existing file.
    subtype : str
        soundfile subtype (``"FLOAT"`` keeps peaks above full scale; ``"PCM_16"``, ...).

    Returns
    -------
    (Path, int)
        The file and the frames written.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``force`` is False (checked before rendering).
    """
    import soundfile as sf

    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass force=True (--force) to overwrite it")
    remove_stale_temporaries(path.parent, names=[path.name])  # a killed render's leftover
    events = list(timed_events)
    seconds = (max((float(t) for t, _ in events), default=0.0)) + tail_seconds
    hops = int(np.ceil(seconds / engine.hop_seconds)) + 1  # as iter_render renders, plus one for safety
    bytes_per_frame = engine.channels * (4 if subtype in ("FLOAT", "PCM_32") else 8 if subtype == "DOUBLE" else 3 if subtype == "PCM_24" else 2)
    container = "RF64" if hops * engine.max_hop_frames * bytes_per_frame > WAV_MAX_BYTES else "WAV"
    frames = 0
    with atomic_output(path, overwrite=True, suffix=".tmp.wav") as temporary:
        with sf.SoundFile(temporary, "w", samplerate=int(engine.output_sample_rate), channels=engine.channels,
                          subtype=subtype, format=container) as out:
            for block in iter_render(engine, events, tail_seconds=tail_seconds, progress=progress):
                out.write(block)
                frames += block.shape[0]
    return path, frames


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
