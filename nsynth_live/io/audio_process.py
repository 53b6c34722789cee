"""The audio callback in a process of its own, so that no Python thread can make it late.

In one process the PortAudio callback (Python, through CFFI) needs the GIL, which the inference
thread, the MIDI reader, the OSC server and the attack-cache renderer take in turns; each time it
waits up to the switch interval, and a burst of Python work elsewhere (128 note-ons, a cache
re-render) made it miss its 5.3-ms deadline (docs/running.md, "Why a separate audio process").
Here the callback (:class:`nsynth_live.engine.callback.CallbackSide`) runs in a small child process
that imports numpy and sounddevice only; its other thread sleeps on a pipe. It shares with the
instrument's process, in one block of shared memory:

* the ring of rendered audio, the counters (write / read positions, xruns, ...) and the scalars
  (master gain, release time) of the callback side;
* two event queues of fixed int64 records: MIDI events in (from the MIDI, player and OSC threads,
  one lock among them; the callback never locks), engine events out (cached note-ons naming their
  cache by ``cache_id``, note-offs, controllers), read by the inference thread before each hop.

Attack caches travel as their own shared-memory blocks: the instrument copies the attack table into
a new block and sends its name over the pipe; the child maps it and swaps it in, and unmaps an old
table once no attack plays from it.

The child opens the device when started and reports ``("ready", info)`` or ``("error", message)``;
``start_stream`` starts the stream once the ring is primed; ``stop`` stops it and returns the
child's figures (recording included: ``--record`` is written in the child, which sees every block).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from dataclasses import asdict
from multiprocessing import shared_memory

import numpy as np

from nsynth_live.engine.callback import C_MIDI_EVENTS, C_MIDI_MESSAGES, C_XRUNS, N_COUNTERS, N_SCALARS, CallbackConfig
from nsynth_live.engine.events import (
    AllNotesOff,
    AllSoundOff,
    CachedNoteOn,
    ChannelPressure,
    ControlChange,
    NoteOff,
    NoteOn,
    PitchBend,
    ProgramChange,
    ReleaseAttack,
    Timed,
)

QUEUE_RECORDS = 8192  # records per queue (a 128-key chord is 128)
RECORD_FIELDS = 6
# record kinds
K_NOTE_ON, K_NOTE_OFF, K_CC, K_PROGRAM, K_ALL_NOTES_OFF, K_ALL_SOUND_OFF, K_CACHED_NOTE_ON, K_RELEASE_ATTACK = range(1, 9)
K_PITCH_BEND, K_PRESSURE = range(9, 11)
START_TIMEOUT_SECONDS = 30.0


_UNCLOSED: list = []  # shared-memory blocks whose mapping a live view still uses


class AudioProcessError(RuntimeError):
    """The audio process could not open the device or died; the message says why."""


class MidiPortNotFound(LookupError):
    """``connect_from`` matched no JACK MIDI output; ``args[1]`` lists them."""


def encode_event(event) -> tuple | None:
    """An event as a queue record ``(kind, a, b, c, d, e)``; None for events the queues do not carry."""
    if isinstance(event, NoteOn):
        return (K_NOTE_ON, event.pitch_midi, event.velocity, event.channel, 0, 0)
    if isinstance(event, NoteOff):
        return (K_NOTE_OFF, event.pitch_midi, 0, 0, 0, 0)
    if isinstance(event, ControlChange):
        return (K_CC, event.controller, event.value, event.channel, 0, 0)
    if isinstance(event, PitchBend):
        return (K_PITCH_BEND, event.value, 0, event.channel, 0, 0)
    if isinstance(event, ChannelPressure):
        return (K_PRESSURE, event.value, 0, event.channel, 0, 0)
    if isinstance(event, ProgramChange):
        return (K_PROGRAM, event.program, 0, 0, 0, 0)
    if isinstance(event, AllNotesOff):
        return (K_ALL_NOTES_OFF, 0, 0, 0, 0, 0)
    if isinstance(event, AllSoundOff):
        return (K_ALL_SOUND_OFF, 0, 0, 0, 0, 0)
    if isinstance(event, Timed) and isinstance(event.event, CachedNoteOn):
        e = event.event
        # the row and the channel share a field: rows < 2**20 (a cache has 49 pitches x 16 layers)
        if not 0 <= e.row < (1 << 20):
            return None
        return (K_CACHED_NOTE_ON, e.key, e.pitch_midi, e.row + (e.channel << 20), e.cache.cache_id, event.at_sample)
    if isinstance(event, Timed) and isinstance(event.event, ReleaseAttack):
        return (K_RELEASE_ATTACK, event.event.key, 0, 0, 0, event.at_sample)
    return None


def decode_event(record, caches_by_id: dict | None = None):
    """The event of a queue record (None for an unknown kind or a cache no longer known)."""
    kind, a, b, c, d, e = (int(v) for v in record)
    if kind == K_NOTE_ON:
        return NoteOn(a, b, c)
    if kind == K_NOTE_OFF:
        return NoteOff(a)
    if kind == K_CC:
        return ControlChange(a, b, c)
    if kind == K_PITCH_BEND:
        return PitchBend(a, c)
    if kind == K_PRESSURE:
        return ChannelPressure(a, c)
    if kind == K_PROGRAM:
        return ProgramChange(a)
    if kind == K_ALL_NOTES_OFF:
        return AllNotesOff()
    if kind == K_ALL_SOUND_OFF:
        return AllSoundOff()
    if kind == K_CACHED_NOTE_ON:
        cache = (caches_by_id or {}).get(d)
        if cache is None:
            return None
        row, channel = c & ((1 << 20) - 1), c >> 20
        velocity = float(cache.velocities[row % cache.velocities.size])
        return Timed(CachedNoteOn(key=a, pitch_midi=b, velocity=velocity, cache=cache, row=row, channel=channel), e)
    if kind == K_RELEASE_ATTACK:
        return Timed(ReleaseAttack(a), e)
    return None


class RecordQueue:
    """Fixed-size int64 records in shared arrays; one consumer, producers serialised by the caller.

    ``heads[0]`` counts records written, ``heads[1]`` records read; the producer publishes
    ``heads[0]`` after the record is in place. A full queue drops the record (``dropped``).
    The order of the two stores relies on x86-64's store ordering (numpy issues no barrier); on a
    weakly ordered CPU (aarch64) a record could be read before it is complete.
    """

    def __init__(self, data: np.ndarray, heads: np.ndarray) -> None:
        self.data = data
        self.heads = heads
        self.dropped = 0

    def put(self, record) -> bool:
        written = int(self.heads[0])
        if written - int(self.heads[1]) >= self.data.shape[0]:
            self.dropped += 1
            return False
        self.data[written % self.data.shape[0]] = record
        self.heads[0] = written + 1
        return True

    def take(self):
        """Yield the records written since the last call (views: use them before the next put)."""
        read = int(self.heads[1])
        written = int(self.heads[0])
        while read < written:
            yield self.data[read % self.data.shape[0]]
            read += 1
            self.heads[1] = read


def _layout(config: CallbackConfig) -> dict:
    """Byte offsets of the arrays in the shared block: name -> (offset, shape, dtype)."""
    entries = [
        ("ring", (config.capacity_frames, config.channels), np.float32),
        ("counters", (N_COUNTERS,), np.int64),
        ("scalars", (N_SCALARS,), np.float64),
        ("in_data", (QUEUE_RECORDS, RECORD_FIELDS), np.int64),
        ("in_heads", (2,), np.int64),
        ("out_data", (QUEUE_RECORDS, RECORD_FIELDS), np.int64),
        ("out_heads", (2,), np.int64),
    ]
    layout, offset = {}, 0
    for name, shape, dtype in entries:
        layout[name] = (offset, shape, np.dtype(dtype).str)
        offset += int(np.prod(shape)) * np.dtype(dtype).itemsize
        offset = (offset + 63) // 64 * 64  # cache-line aligned
    layout["_size"] = offset
    return layout


def _views(buffer, layout: dict) -> dict:
    arrays = {name: entry for name, entry in layout.items() if not name.startswith("_")}
    return {name: np.ndarray(shape, dtype=np.dtype(dtype), buffer=buffer, offset=offset)
            for name, (offset, shape, dtype) in arrays.items()}


def _attach(name: str) -> shared_memory.SharedMemory:
    """Map an existing block. The child is spawned by multiprocessing and shares the instrument's
    resource tracker, whose set of names already holds this one: the instrument unlinks it."""
    return shared_memory.SharedMemory(name=name)


class AudioProcess:
    """The instrument's side of the audio process (the ``link`` of a RealtimeRunner).

    Parameters
    ----------
    config : CallbackConfig
        From the runner (``RealtimeRunner(..., link_factory=...)`` passes it).
    device : OutputDevice
        The output device (:func:`nsynth_live.io.audio.select_output_device`).
    sample_rate, block_size, channels : int
    jack_client_name : str or None
        The JACK client name PortAudio registers (None: PortAudio's default).
    record : dict or None
        ``BlockRecorder`` arguments (``path``, ``ring_blocks``) to record what the callback plays.
    realtime_priority : int or None
        SCHED_FIFO priority for the child's threads (the callback's thread belongs to the audio
        server's library: JACK makes it real-time itself).
    jack_native : dict or None
        Play through one JACK client of the child's own (:class:`JackStream`) instead of PortAudio:
        ``client_name``, ``midi_port`` (None: no MIDI input) and ``connect_from``.

    Raises
    ------
    AudioProcessError
        If the child cannot open the device (the message is the device error), or does not
        answer within ``START_TIMEOUT_SECONDS``.
    """

    def __init__(self, config: CallbackConfig, *, device, sample_rate: int, block_size: int, channels: int,
                 jack_client_name: str | None = None, record: dict | None = None,
                 realtime_priority: int | None = None, jack_native: dict | None = None) -> None:
        layout = _layout(config)
        self._views: dict = {}
        self._cache_blocks: list = []  # (cache_id, SharedMemory), oldest first
        self._in = self._out = None
        self._in_lock = threading.Lock()
        self._pipe_lock = threading.Lock()
        self._process = None
        self.result: dict = {}
        self._block = shared_memory.SharedMemory(create=True, size=layout["_size"])
        try:
            self._start(layout, config, device, sample_rate, block_size, channels, jack_client_name, record,
                        realtime_priority, jack_native)
        except BaseException:
            self.close()
            raise

    def _start(self, layout, config, device, sample_rate, block_size, channels, jack_client_name, record,
               realtime_priority, jack_native) -> None:
        views = _views(self._block.buf, layout)
        for view in views.values():
            view.fill(0)
        self._views = views
        self.ring, self.counters, self.scalars = views["ring"], views["counters"], views["scalars"]
        self._in = RecordQueue(views["in_data"], views["in_heads"])
        self._out = RecordQueue(views["out_data"], views["out_heads"])
        self._cache_blocks: list = []  # (cache_id, SharedMemory), oldest first
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self.result: dict = {}
        self._process = context.Process(
            target=_child_main, name="nsynth-live-audio",
            args=(child_conn, self._block.name, layout, asdict(config), asdict(device), int(sample_rate),
                  int(block_size), int(channels), jack_client_name, record, realtime_priority, jack_native),
            daemon=True)
        self._process.start()
        child_conn.close()
        self.info = self._expect("ready")

    # ------------------------------------------------------------------ link interface
    def send_event(self, event) -> bool:
        """Queue a MIDI-like event for the callback (thread-safe). Returns False for an event the
        queue does not carry (XY, presets: the caller gives those to the engine) or after close."""
        record = encode_event(event)
        if record is None:
            return False
        with self._in_lock:
            if self._in is None:
                return False
            self._in.put(record)
        return True

    def receive_events(self, caches_by_id: dict) -> list:
        """The engine events the callback sent since the last call (inference thread only)."""
        events = []
        for record in self._out.take():
            event = decode_event(record, caches_by_id)
            if event is not None:
                events.append(event)
        return events

    def publish_cache(self, cache) -> None:
        """Copy ``cache``'s attack table into shared memory and hand it to the callback."""
        block = shared_memory.SharedMemory(create=True, size=max(1, cache.attack.nbytes))
        table = np.ndarray(cache.attack.shape, dtype=cache.attack.dtype, buffer=block.buf)
        table[:] = cache.attack
        del table
        meta = {
            "shape": cache.attack.shape, "dtype": cache.attack.dtype.str, "pitches": cache.pitches,
            "velocities": cache.velocities, "handoff_hops": cache.handoff_hops, "time_index": cache.time_index,
            "ratio": cache.ratio, "integer_ratio": cache.integer_ratio, "delay_frames": cache.delay_frames,
            "hop_length_samples": cache.hop_length_samples, "cache_id": cache.cache_id,
        }
        try:
            self._send(("cache", block.name, meta))
        except BaseException:  # the child is gone: nothing will map it
            block.close()
            block.unlink()
            raise
        self._cache_blocks.append((cache.cache_id, block))
        while len(self._cache_blocks) > 3:  # the child maps a table within ms of the message
            _, old = self._cache_blocks.pop(0)
            old.close()
            old.unlink()  # the child keeps its own mapping until no attack plays from it

    # ------------------------------------------------------------------ control
    def start_stream(self) -> None:
        """Start the device stream (call once the ring is primed)."""
        self._send(("start",))
        self._expect("started")

    def stop(self, *, timeout_seconds: float = 10.0) -> dict:
        """Stop the stream, finish the recording; the child's figures (``frames_written``,
        ``dropped_blocks``, ``recorded_path``, ``max_rss_mib``). Idempotent."""
        if self._process.is_alive():
            try:
                self._send(("stop",))
                self.result = self._expect("stopped", timeout_seconds=timeout_seconds)
            except (AudioProcessError, OSError, EOFError):
                pass
        self._process.join(timeout_seconds)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        return self.result

    def abort(self, *, timeout_seconds: float = 10.0) -> None:
        """Stop without keeping a recording (a start that failed half-way): the child removes its
        temporary recording file and exits. Call :meth:`close` afterwards."""
        if self._process.is_alive():
            try:
                self._send(("abort",))
                self._expect("stopped", timeout_seconds=timeout_seconds)
            except (AudioProcessError, OSError, EOFError):
                pass
        self._process.join(timeout_seconds)

    def close(self) -> None:
        """End the child and free the shared memory. Idempotent."""
        if self._block is None:
            return
        process = getattr(self, "_process", None)
        if process is not None and process.pid is not None:
            if process.is_alive():
                process.kill()
            process.join(5)
        self._views = {}
        self.ring = self.counters = self.scalars = None
        with self._in_lock:
            self._in = None
        self._out = None
        for _, block in self._cache_blocks:
            block.close()
            block.unlink()
        self._cache_blocks = []
        self._block.unlink()
        try:
            self._block.close()
        except BufferError:  # a view is still held somewhere: keep the object (and the mapping)
            _UNCLOSED.append(self._block)  # so that its __del__ does not run, and complain, early
        self._block = None

    @property
    def midi_messages(self) -> int:
        """JACK MIDI events the child's client received (``jack_native`` with a MIDI port)."""
        return int(self.counters[C_MIDI_MESSAGES]) if self.counters is not None else 0

    @property
    def midi_events(self) -> int:
        """Engine events parsed from them."""
        return int(self.counters[C_MIDI_EVENTS]) if self.counters is not None else 0

    @property
    def events_dropped(self) -> int:
        """Events the full in-queue dropped (0 unless 8192 events came within one block)."""
        return self._in.dropped if self._in is not None else 0

    @property
    def alive(self) -> bool:
        """Whether the child process still runs."""
        return self._process.is_alive()

    def _send(self, message) -> None:
        with self._pipe_lock:
            self._conn.send(message)

    def _expect(self, what: str, *, timeout_seconds: float = START_TIMEOUT_SECONDS):
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self._conn.poll(0.05):
                try:
                    message = self._conn.recv()
                except EOFError as error:
                    raise AudioProcessError("the audio process ended unexpectedly") from error
                if message[0] == what:
                    return message[1] if len(message) > 1 else None
                if message[0] == "error":
                    raise AudioProcessError(message[1])
                if message[0] == "no-midi-port":
                    raise MidiPortNotFound(message[1], message[2])
            elif not self._process.is_alive():
                raise AudioProcessError(f"the audio process exited with code {self._process.exitcode}")
        raise AudioProcessError(f"the audio process did not answer {what!r} within {timeout_seconds:.0f} s")


# ---------------------------------------------------------------------- the child
class JackStream:
    """Audio out and (optionally) MIDI in on ONE JACK client (``JACK-Client``), used by the audio
    process when the device is a JACK server: same start / stop / close as a PortAudio stream.

    The MIDI events of a cycle are read in that cycle's process callback, before the audio, and
    reach the callback side with their frame offsets, so a note-on sounds from its own frame in
    the very cycle it arrived (no block of waiting, no jitter). Bytes are parsed as a MIDI stream
    (:class:`nsynth_live.engine.midi.MidiStreamParser`: SysEx, running status, garbage).

    Parameters
    ----------
    side : CallbackSide
    counters : int64 array
        The shared counters (xruns, MIDI messages and events are counted there).
    client_name : str
        The JACK client (ports ``<client>:out_0``, ``out_1`` and ``<client>:<midi_port>``).
    channels : int
    midi_port : str or None
        Name of the MIDI input port; None for no MIDI input.
    connect_from : str or None
        Connect the first JACK MIDI output whose name contains this (case-insensitive).
    on_block : callable, optional
        ``on_block(outdata)`` after each block (the recorder).

    Raises
    ------
    LookupError
        If ``connect_from`` matches no MIDI output (``args[1]`` lists them).
    RuntimeError
        If there is no JACK server (``jack.JackError``).
    """

    def __init__(self, side, counters, *, client_name: str, channels: int, midi_port: str | None,
                 connect_from: str | None, on_block=None) -> None:
        import jack

        from nsynth_live.engine.midi import MidiStreamParser
        from nsynth_live.io.midi_in import find_jack_midi_output

        self._client = client = jack.Client(client_name, no_start_server=True)
        try:
            self.source = None if connect_from is None else find_jack_midi_output(client, connect_from)
            self._outs = [client.outports.register(f"out_{i}") for i in range(channels)]
            self._midi = client.midi_inports.register(midi_port) if midi_port else None
        except BaseException:
            client.close()
            raise
        self.midi_port_name = self._midi.name if self._midi is not None else None
        self.samplerate = int(client.samplerate)
        self.blocksize = int(client.blocksize)
        scratch = np.zeros((max(self.blocksize, 8192), channels), dtype=np.float32)
        parser = MidiStreamParser()
        outs, midi = self._outs, self._midi

        def process(frames: int) -> None:  # JACK's real-time thread
            try:
                if midi is not None:
                    for offset, data in midi.incoming_midi_events():
                        counters[C_MIDI_MESSAGES] += 1
                        for event in parser.feed(bytes(data)):
                            counters[C_MIDI_EVENTS] += 1
                            side.post(event, offset)
                out = scratch[:frames]
                side.audio_callback(out, frames, None, 0)
                for channel, port in enumerate(outs):
                    port.get_array()[:] = out[:, channel]
                if on_block is not None:
                    on_block(out)
            except Exception:  # noqa: BLE001 - JACK-Client would stop calling us
                for port in outs:
                    try:
                        port.get_array().fill(0.0)
                    except Exception:  # noqa: BLE001
                        pass

        def xrun(_delay_usecs: float) -> None:
            counters[C_XRUNS] += 1

        client.set_process_callback(process)
        client.set_xrun_callback(xrun)

    def start(self) -> None:
        """Activate; connect the outputs to the system's playback ports and the MIDI source."""
        client = self._client
        client.activate()
        playback = client.get_ports(is_physical=True, is_input=True, is_audio=True)
        for port, destination in zip(self._outs, playback):
            try:
                client.connect(port, destination)
            except Exception:  # noqa: BLE001 - already connected, or refused: play on
                pass
        if self.source is not None and self._midi is not None:
            client.connect(self.source, self._midi)

    def stop(self) -> None:
        """Deactivate (silence; the ports go away with :meth:`close`)."""
        try:
            self._client.deactivate()
        except Exception:  # noqa: BLE001
            pass

    def close(self) -> None:
        """Close the JACK client (idempotent)."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass


def _peak_rss_mib() -> float:
    """This process's peak resident memory since its exec, MiB (``VmHWM``; ``ru_maxrss`` would
    report the instrument's, inherited through fork and exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _child_main(conn, block_name, layout, config_fields, device_fields, sample_rate, block_size, channels,
                jack_client_name, record, realtime_priority, jack_native) -> None:  # pragma: no cover - child
    import os
    import signal

    from nsynth_live.engine.attack_cache import AttackCache
    from nsynth_live.engine.callback import CallbackConfig, CallbackSide
    from nsynth_live.io.audio import AudioDeviceError, OutputDevice, open_output_stream, set_jack_client_name

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the instrument's to handle
    block = _attach(block_name)
    views = _views(block.buf, layout)
    config = CallbackConfig(**config_fields)
    out_queue = RecordQueue(views["out_data"], views["out_heads"])
    in_queue = RecordQueue(views["in_data"], views["in_heads"])
    counters = views["counters"]

    def to_engine(event) -> None:
        record_ = encode_event(event)
        if record_ is not None:
            out_queue.put(record_)

    def events():
        for record_ in in_queue.take():
            event = decode_event(record_)
            if event is not None:
                yield event

    side = CallbackSide(config, ring=views["ring"], counters=counters, scalars=views["scalars"],
                        to_engine=to_engine, event_source=events)
    recorder = None
    try:
        if realtime_priority is not None:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(realtime_priority))
            except (AttributeError, OSError):
                pass
        device = OutputDevice(**device_fields)
        ready_info = {"device": device.label}

        def record_block(outdata) -> None:
            if recorder is not None:
                try:
                    recorder.push(outdata)
                except Exception:  # noqa: BLE001 - never let the callback die
                    pass

        if jack_native is not None:
            stream = JackStream(side, counters, client_name=jack_native["client_name"], channels=channels,
                                midi_port=jack_native.get("midi_port"), connect_from=jack_native.get("connect_from"),
                                on_block=record_block)
            if stream.samplerate != sample_rate or stream.blocksize != block_size:
                stream.close()
                raise ValueError(f"the JACK server runs at {stream.samplerate} Hz with {stream.blocksize}-frame "
                                 f"periods, not {sample_rate} Hz / {block_size}")
            ready_info.update(midi_port=stream.midi_port_name, connected_from=stream.source)
        elif jack_client_name is not None:
            set_jack_client_name(jack_client_name)

        def callback(outdata, frames, time_info, status):
            side.audio_callback(outdata, frames, time_info, status)
            if recorder is not None:
                try:
                    recorder.push(outdata)
                except Exception:  # noqa: BLE001 - never let the callback die
                    pass

        if jack_native is None:
            stream = open_output_stream(device, sample_rate=sample_rate, block_size=block_size, channels=channels,
                                        callback=callback)
        if record is not None:
            from nsynth_live.io.recorder import BlockRecorder

            recorder = BlockRecorder(record["path"], sample_rate=sample_rate, channels=channels,
                                     max_block_frames=block_size, ring_blocks=record["ring_blocks"])
    except LookupError as error:
        conn.send(("no-midi-port", str(error.args[0]), list(error.args[1]) if len(error.args) > 1 else []))
        return
    except (AudioDeviceError, OSError, ValueError, RuntimeError) as error:
        conn.send(("error", f"{type(error).__name__}: {error}" if not isinstance(error, AudioDeviceError) else str(error)))
        return
    conn.send(("ready", ready_info))

    tables: list = []  # (SharedMemory, table) of mapped caches, oldest first
    started = False
    try:
        while True:
            if not conn.poll(1.0):
                # unmap the tables no attack plays from (all but the newest)
                in_use = side.tables_in_use()
                for entry in list(tables[:-1]):
                    if id(entry[1]) not in in_use:
                        tables.remove(entry)
                        shm, table = entry
                        del table, entry
                        try:
                            shm.close()
                        except BufferError:
                            pass
                continue
            message = conn.recv()
            if message[0] == "cache":
                _, name, meta = message
                shm = _attach(name)
                table = np.ndarray(meta["shape"], dtype=np.dtype(meta["dtype"]), buffer=shm.buf)
                side.cache = AttackCache(
                    embedding=np.zeros(0, np.float32), pitches=meta["pitches"], velocities=meta["velocities"],
                    attack=table, state={}, handoff_hops=meta["handoff_hops"], time_index=meta["time_index"],
                    ratio=meta["ratio"], integer_ratio=meta["integer_ratio"], delay_frames=meta["delay_frames"],
                    hop_length_samples=meta["hop_length_samples"], cache_id=meta["cache_id"])
                tables.append((shm, table))
            elif message[0] == "start":
                import gc

                gc.collect()
                gc.freeze()  # what exists now never needs a collection pass in the callback
                stream.start()
                started = True
                conn.send(("started",))
            elif message[0] in ("stop", "abort"):
                if started:
                    stream.stop()
                stream.close()
                result = {"max_rss_mib": _peak_rss_mib()}
                if recorder is not None:
                    if message[0] == "abort" or not started:
                        recorder.abort()
                    else:
                        path = recorder.close()
                        result.update(recorded_path=str(path), frames_written=recorder.frames_written,
                                      dropped_blocks=recorder.dropped_blocks)
                conn.send(("stopped", result))
                return
    except (EOFError, OSError):  # the instrument went away: stop quietly
        try:
            stream.close()
        except Exception:  # noqa: BLE001
            pass
        if recorder is not None:
            recorder.abort()
