"""MIDI input: a virtual input port, or a connection to a named port.

Backends are tried in order ALSA, then JACK; when neither works (no ALSA sequencer in the kernel and
no JACK server running) the instrument runs without MIDI and says why.

* ALSA: python-rtmidi. Its callback runs on RtMidi's own thread.
* JACK: the ``JACK-Client`` package reads each raw JACK MIDI event in the JACK process callback.
  Not rtmidi's JACK backend: after an event that starts a SysEx (``F0``) and does not end in
  ``F7``, RtMidi (``jackProcessIn`` of the RtMidi bundled with python-rtmidi 1.5.8) treats every
  later event as SysEx continuation until one ends in ``F7``; with SysEx ignored (rtmidi's default)
  it drops them all (note-off, CC123, CC120 included), with SysEx passed it glues them into one
  message delivered only at that ``F7``. Measured on a JACK dummy server (issue 15). Where
  JACK-Client is not installed, rtmidi's JACK backend is used and a warning says so.

  The JACK-Client reader runs in a small child process (:class:`JackMidiSubprocess`, about 70 ms
  to start, imports only this module and ``jack``). A JACK-Client process callback is Python and
  takes the GIL in *every* JACK cycle; in the instrument's process it waited for the GIL while
  the instrument started (``gc.collect``, ring prefill) and JACK logged 6 xruns naming
  ``nsynth-live`` (measured, 2-core machine, JACK real-time, 512 frames). The child's GIL is its
  own; it copies each event's bytes into a pipe (non-blocking, never waits) and a reader thread of
  the instrument, ``nsynth-midi-in``, parses them and posts the events.

Either way the bytes only go through the stream parser
(:func:`nsynth_live.engine.midi.parse_midi_bytes`, one state per port: running status, SysEx
resynchronised by the next status byte) and the events it yields are posted to the engine; garbage
bytes are dropped by the parser. Nothing here blocks or raises into the MIDI thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

logger = logging.getLogger(__name__)

DEFAULT_MIDI_PORT_NAME = "nsynth-live"  # name of the virtual input port (and of the MIDI client)


class MidiInputError(RuntimeError):
    """A named MIDI port was asked for and could not be opened (the message lists the ports)."""


@dataclass
class MidiInput:
    """An open MIDI input.

    Attributes
    ----------
    api_name : str
        ``"ALSA"`` or ``"JACK"``.
    port_description : str
        The virtual port's name, or the name of the port connected to.
    messages_received : int
        Chunks of MIDI bytes received: JACK MIDI events, or messages delivered by RtMidi (parsed
        or not).
    events_posted : int
        Engine events posted (a chunk may hold several messages, or none).
    """

    api_name: str
    port_description: str
    _close_backend: Callable[[], None] | None = None
    messages_received: int = 0
    events_posted: int = 0

    def close(self) -> None:
        """Stop the callback and close the port (idempotent)."""
        close, self._close_backend = self._close_backend, None
        if close is not None:
            close()


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence what C libraries print on file descriptor 2 (ALSA's and libjack's connection errors).

    Probing a backend that is not there makes alsa-lib and libjack print several lines each; the
    warning :func:`open_midi_input` logs says the same in one line.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreter): leave it alone
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _backends(rtmidi) -> list[tuple[str, int]]:
    """(name, rtmidi API constant) pairs compiled into this rtmidi, in the order ALSA, JACK."""
    compiled = set(rtmidi.get_compiled_api())
    order = [("ALSA", rtmidi.API_LINUX_ALSA), ("JACK", rtmidi.API_UNIX_JACK)]
    return [(name, api) for name, api in order if api in compiled]


def make_chunk_handler(
    post: Callable[[Any], None],
    feed: Callable[[Sequence[int]], Sequence[Any]],
    counters: MidiInput | None = None,
) -> Callable[[Any], None]:
    """Build what every backend calls with each chunk of MIDI bytes: parse, post, never raise.

    Parameters
    ----------
    post : callable
        ``engine.post`` (thread-safe).
    feed : callable
        ``feed(chunk) -> list of Event``: the port's stream parser
        (:meth:`nsynth_live.engine.midi.MidiStreamParser.feed`), which keeps running status and
        SysEx state from one chunk to the next.
    counters : MidiInput, optional
        Receives the chunk and event counts.

    Returns
    -------
    callable
        ``handle(chunk)``, ``chunk`` the raw bytes of one JACK MIDI event or rtmidi message.
    """

    def handle(chunk) -> None:
        try:
            if counters is not None:
                counters.messages_received += 1
            for event in feed(chunk):
                post(event)
                if counters is not None:
                    counters.events_posted += 1
        except Exception:  # noqa: BLE001 - an exception here would only reach the MIDI thread
            pass

    return handle


def make_midi_callback(
    post: Callable[[Any], None],
    feed: Callable[[Sequence[int]], Sequence[Any]],
    counters: MidiInput | None = None,
) -> Callable[[tuple[list[int], float], Any], None]:
    """Build the rtmidi callback: feed the bytes to the port's parser, post its events, never raise.

    Parameters
    ----------
    post, feed, counters
        As :func:`make_chunk_handler`.

    Returns
    -------
    callable
        ``callback((message_bytes, delta_seconds), data)`` as python-rtmidi calls it.
    """
    handle = make_chunk_handler(post, feed, counters)

    def callback(message_and_delta, _data=None):
        try:
            message = message_and_delta[0]
        except Exception:  # noqa: BLE001 - not even a (message, delta) pair
            message = None
        handle(message)

    return callback


def find_jack_midi_output(client, pattern: str) -> str:
    """Full name of the first JACK MIDI output port whose name contains ``pattern``
    (case-insensitive), as ``client`` (a ``jack.Client``) sees the graph.

    Raises
    ------
    LookupError
        If none matches; ``args[1]`` lists the MIDI output ports.
    """
    outputs = [p.name for p in client.get_ports(is_midi=True, is_output=True)]
    matches = [name for name in outputs if pattern.lower() in name.lower()]
    if not matches:
        raise LookupError(f"no JACK MIDI output matches {pattern!r}", outputs)
    return matches[0]


class JackMidiPort:
    """A JACK client with one MIDI input port, read in the JACK process callback (JACK-Client).

    Each JACK MIDI event's raw bytes go to ``on_chunk`` in the order JACK delivers them, whatever
    they hold (the JACK process thread; ``on_chunk`` must only parse and enqueue, never block).

    Parameters
    ----------
    on_chunk : callable
        ``on_chunk(data: bytes) -> None``, called once per JACK MIDI event; must not raise.
    client_name : str
        JACK client name (JACK appends a number if it is taken).
    port_name : str
        Name of the MIDI input port (``<client_name>:<port_name>``).
    connect_from_matching : str, optional
        Connect the first JACK MIDI output port whose name contains this (case-insensitive) to the
        input.

    Raises
    ------
    ImportError
        If JACK-Client (or libjack) is not installed.
    RuntimeError
        ``jack.JackError`` (a RuntimeError) when no JACK server runs or JACK refuses the port.
    LookupError
        When ``connect_from_matching`` matches no MIDI output port; ``args[1]`` lists the ports.

    Attributes
    ----------
    port_name : str
        Full JACK name of the input port.
    connected_from : str or None
        Full JACK name of the output port connected to it.
    """

    def __init__(self, on_chunk: Callable[[bytes], None], *, client_name: str, port_name: str,
                 connect_from_matching: str | None = None) -> None:
        import jack

        self._on_chunk = on_chunk
        self.connected_from: str | None = None
        self._client = jack.Client(client_name, no_start_server=True)
        try:
            source = None
            if connect_from_matching is not None:
                source = find_jack_midi_output(self._client, connect_from_matching)
            self._port = self._client.midi_inports.register(port_name)
            self.port_name = self._port.name
            self._client.set_process_callback(self._process)
            self._client.activate()
            if source is not None:
                self._client.connect(source, self._port)
                self.connected_from = source
        except BaseException:
            self._client.close()
            raise

    def _process(self, frames: int) -> None:
        # JACK's real-time thread: copy each event's bytes (JACK reuses the buffer) and hand them on.
        try:
            for _offset, data in self._port.incoming_midi_events():
                self._on_chunk(bytes(data))
        except Exception:  # noqa: BLE001 - an exception would stop JACK-Client calling us at all
            pass

    def close(self) -> None:
        """Deactivate and close the JACK client (idempotent)."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.deactivate()
        finally:
            client.close()


_FRAME_HEADER_BYTES = 2  # big-endian payload length before each chunk in the reader's pipe
_FRAME_PAYLOAD_MAX = 1024  # bytes per pipe frame: header + payload < PIPE_BUF (4096), so each write is atomic
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # folder holding the nsynth_live package
_CHILD_CODE = ("import sys; from nsynth_live.io.midi_in import _jack_reader_main; "
               "sys.exit(_jack_reader_main(sys.argv[1]))")


def _jack_reader_main(request_json: str) -> int:
    """The child process of :class:`JackMidiSubprocess`: a :class:`JackMidiPort` whose events go to stdout.

    Writes one JSON line first (``{"ok": true, "port_name": ..., "connected_from": ...}`` or
    ``{"ok": false, "error": ..., "outputs": [...] or null}``), then one frame per JACK MIDI event
    (a 2-byte big-endian length, then at most :data:`_FRAME_PAYLOAD_MAX` bytes; longer events are
    split, which the stream parser reads the same). Stdout is non-blocking after the JSON line: a
    frame that does not fit in the pipe is dropped, the JACK thread never waits. Runs until stdin
    ends (the instrument closed it, or exited).
    """
    request = json.loads(request_json)
    out_fd = sys.stdout.fileno()
    forwarding = False

    def forward(data: bytes) -> None:  # JACK's real-time thread
        if not forwarding:
            return
        for start in range(0, len(data), _FRAME_PAYLOAD_MAX):
            piece = data[start:start + _FRAME_PAYLOAD_MAX]
            try:
                os.write(out_fd, len(piece).to_bytes(_FRAME_HEADER_BYTES, "big") + piece)
            except OSError:  # pipe full (the instrument stalled) or closed: drop, never block
                return

    def say(answer: dict) -> None:
        os.write(out_fd, (json.dumps(answer) + "\n").encode())

    try:
        port = JackMidiPort(forward, client_name=request["client_name"], port_name=request["port_name"],
                            connect_from_matching=request.get("connect_from_matching"))
    except LookupError as error:
        say({"ok": False, "error": str(error.args[0]), "outputs": list(error.args[1])})
        return 0
    except Exception as error:  # noqa: BLE001 - no JACK server, JACK-Client or libjack missing: say why
        say({"ok": False, "error": f"{type(error).__name__}: {error}", "outputs": None})
        return 0
    try:
        say({"ok": True, "port_name": port.port_name, "connected_from": port.connected_from})
        os.set_blocking(out_fd, False)
        forwarding = True
        while sys.stdin.buffer.read1(4096):  # until EOF: the instrument closed the pipe or exited
            pass
    except (OSError, ValueError):
        pass
    finally:
        forwarding = False
        port.close()
    return 0


class JackMidiSubprocess:
    """A JACK MIDI input read by a child process (:func:`_jack_reader_main`), bytes handed to ``on_chunk``.

    The child owns the JACK client (``JACK-Client``), so its per-cycle Python callback never waits
    for this process's GIL. Here a daemon thread, ``nsynth-midi-in``, reads the pipe and calls
    ``on_chunk(data: bytes)`` once per JACK MIDI event (or piece of a long one), in order.

    Parameters
    ----------
    on_chunk : callable
        ``on_chunk(data: bytes) -> None``; must not raise.
    client_name, port_name, connect_from_matching
        As :class:`JackMidiPort`.
    timeout_seconds : float
        How long to wait for the child to open its port (s).

    Raises
    ------
    LookupError
        When ``connect_from_matching`` matches no JACK MIDI output; ``args[1]`` lists them.
    RuntimeError
        When the child cannot open the port (no JACK server, no JACK-Client or libjack: the message
        says which), or does not answer in time.

    Attributes
    ----------
    port_name : str
        Full JACK name of the input port.
    connected_from : str or None
        Full JACK name of the output port connected to it.
    pid : int
        The child's process id.
    """

    def __init__(self, on_chunk: Callable[[bytes], None], *, client_name: str, port_name: str,
                 connect_from_matching: str | None = None, timeout_seconds: float = 10.0) -> None:
        request = json.dumps({"client_name": client_name, "port_name": port_name,
                              "connect_from_matching": connect_from_matching})
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")]))
        self._on_chunk = on_chunk
        self._process = subprocess.Popen([sys.executable, "-c", _CHILD_CODE, request], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self.pid = self._process.pid
        self._fd = self._process.stdout.fileno()
        self._thread: threading.Thread | None = None
        try:
            answer, self._pending = self._read_answer(timeout_seconds)
        except BaseException:
            self.close()
            raise
        if not answer.get("ok"):
            self.close()
            if answer.get("outputs") is not None:
                raise LookupError(answer["error"], answer["outputs"])
            raise RuntimeError(answer.get("error", "the JACK MIDI reader failed"))
        self.port_name = answer["port_name"]
        self.connected_from = answer.get("connected_from")
        self._thread = threading.Thread(target=self._read_frames, name="nsynth-midi-in", daemon=True)
        self._thread.start()

    def _read_answer(self, timeout_seconds: float) -> tuple[dict, bytes]:
        """The child's JSON line, and whatever frames came after it in the same read."""
        received = b""
        deadline = time.monotonic() + timeout_seconds
        while b"\n" not in received:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"the JACK MIDI reader (pid {self.pid}) did not answer in {timeout_seconds:.0f} s")
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                continue
            data = os.read(self._fd, 65536)
            if not data:
                code = self._process.poll()
                raise RuntimeError(f"the JACK MIDI reader exited before opening its port (exit code {code}); "
                                   "run: python -c 'import jack' to see why")
            received += data
        line, _, rest = received.partition(b"\n")
        try:
            return json.loads(line), rest
        except ValueError as error:
            raise RuntimeError(f"the JACK MIDI reader said {line[:200]!r}, not its JSON answer") from error

    def _read_frames(self) -> None:
        buffer = bytearray(self._pending)
        while True:
            while len(buffer) >= _FRAME_HEADER_BYTES:
                size = int.from_bytes(buffer[:_FRAME_HEADER_BYTES], "big")
                if len(buffer) < _FRAME_HEADER_BYTES + size:
                    break
                self._on_chunk(bytes(buffer[_FRAME_HEADER_BYTES:_FRAME_HEADER_BYTES + size]))
                del buffer[:_FRAME_HEADER_BYTES + size]
            try:
                data = os.read(self._fd, 65536)
            except OSError:
                return
            if not data:  # the child exited
                return
            buffer += data

    def close(self, *, timeout_seconds: float = 5.0) -> None:
        """Stop the child (end of its stdin; killed after ``timeout_seconds``) and the reader thread (idempotent)."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_seconds)
        if self._thread is not None:
            self._thread.join(timeout=timeout_seconds)
        process.stdout.close()


def _open_rtmidi(rtmidi, api_name: str, api: int, *, client_name: str, virtual_port_name: str,
                 port_name: str | None, seen_ports: list[str]):
    """Open an rtmidi input on one API: ``(midi_in, description)``, or ``(None, why not)``."""
    try:
        with _quiet_native_stderr():
            midi_in = rtmidi.MidiIn(api, name=client_name)
    except (rtmidi.RtMidiError, RuntimeError) as error:  # no ALSA sequencer / no JACK server
        return None, f"{api_name}: {error}"
    try:
        if port_name is None:
            midi_in.open_virtual_port(virtual_port_name)
            return midi_in, f"virtual port {client_name}:{virtual_port_name}"
        ports = midi_in.get_ports()
        seen_ports.extend(f"{p} ({api_name})" for p in ports)
        matches = [i for i, p in enumerate(ports) if port_name.lower() in p.lower()]
        if not matches:
            midi_in.delete()
            return None, f"{api_name}: no port matches {port_name!r}"
        midi_in.open_port(matches[0], name=f"{virtual_port_name}-in")
        return midi_in, f"port {ports[matches[0]]}"
    except (rtmidi.RtMidiError, RuntimeError) as error:
        midi_in.delete()
        return None, f"{api_name}: {error}"


def _close_rtmidi(midi_in) -> Callable[[], None]:
    def close() -> None:
        try:
            midi_in.cancel_callback()
            midi_in.close_port()
        finally:
            midi_in.delete()

    return close


def _open_jack_client(handle: Callable[[bytes], None], *, client_name: str, virtual_port_name: str,
                      port_name: str | None, seen_ports: list[str]):
    """Open the JACK-Client input (:class:`JackMidiSubprocess`): ``(reader, description)``,
    ``(None, why not)``, or ``(False, why)`` when JACK-Client itself is not usable here (then
    rtmidi's JACK is tried)."""
    try:
        import jack  # noqa: F401 - JACK-Client; loads libjack (here only to know it is there)
    except (ImportError, OSError) as error:
        return False, f"JACK-Client not usable ({error})"
    try:
        port = JackMidiSubprocess(handle, client_name=client_name,
                                  port_name=virtual_port_name if port_name is None else f"{virtual_port_name}-in",
                                  connect_from_matching=port_name)
    except LookupError as error:
        seen_ports.extend(f"{p} (JACK)" for p in error.args[1])
        return None, f"JACK: no port matches {port_name!r}"
    except Exception as error:  # noqa: BLE001 - no server (JackOpenError), JACK refused, reader failed
        return None, f"JACK: {error}"
    if port_name is None:
        return port, f"virtual port {port.port_name}"
    return port, f"port {port.connected_from}"


def open_midi_input(
    post: Callable[[Any], None],
    *,
    port_name: str | None = None,
    client_name: str = DEFAULT_MIDI_PORT_NAME,
    virtual_port_name: str = DEFAULT_MIDI_PORT_NAME,
) -> MidiInput | None:
    """Open MIDI input and route it to ``post``.

    Parameters
    ----------
    post : callable
        Receives each parsed event (``Engine.post``).
    port_name : str, optional
        Connect to the first existing input port (a JACK MIDI output) whose name contains this
        (case-insensitive). If None, open a virtual input port named ``virtual_port_name`` that
        other programs connect to.
    client_name : str
        MIDI client name (JACK shows ports as ``<client_name>:<port>``).
    virtual_port_name : str
        Name of the virtual port.

    Returns
    -------
    MidiInput or None
        None when no MIDI backend works here (a warning says why; the instrument plays on without
        MIDI input).

    Raises
    ------
    MidiInputError
        If ``port_name`` is given and no backend has a port matching it (the message lists the ports).
    ImportError
        If python-rtmidi is not installed.
    """
    try:
        import rtmidi
    except ImportError as error:
        raise ImportError("python-rtmidi is missing: pip install python-rtmidi") from error
    from nsynth_live.engine.midi import MidiStreamParser

    # Never let libjack start a JACK server on its own while we probe for one.
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    failures: list[str] = []
    seen_ports: list[str] = []
    for api_name, api in _backends(rtmidi):
        handle = MidiInput(api_name=api_name, port_description="")
        jack_client_missing = None
        if api_name == "JACK":
            on_chunk = make_chunk_handler(post, MidiStreamParser().feed, handle)  # one parser per port
            port, description = _open_jack_client(on_chunk, client_name=client_name,
                                                  virtual_port_name=virtual_port_name, port_name=port_name,
                                                  seen_ports=seen_ports)
            if port:
                handle.port_description, handle._close_backend = description, port.close
                return handle
            if port is None:
                failures.append(description)
                continue
            jack_client_missing = description
        midi_in, description = _open_rtmidi(rtmidi, api_name, api, client_name=client_name,
                                            virtual_port_name=virtual_port_name, port_name=port_name,
                                            seen_ports=seen_ports)
        if midi_in is None:
            failures.append(description)
            continue
        if jack_client_missing is not None:
            logger.warning(
                "JACK MIDI input through rtmidi (%s): after a SysEx without its F7, rtmidi's JACK input "
                "drops every later message until one ends in F7 (notes can hang). Fix: pip install JACK-Client",
                jack_client_missing)
        handle.port_description, handle._close_backend = description, _close_rtmidi(midi_in)
        midi_in.set_callback(make_midi_callback(post, MidiStreamParser().feed, handle))
        return handle

    if port_name is not None:
        listing = "\n".join(f"  {p}" for p in seen_ports) or "  (no MIDI input ports found)"
        raise MidiInputError(
            f"no MIDI input port matches {port_name!r}. Ports:\n{listing}\n"
            f"Tried: {'; '.join(failures) or 'no rtmidi backend compiled in'}.\n"
            "Fix: pass part of one of these names to --midi-port, or leave it out to get a virtual port "
            f"named {virtual_port_name!r} that you connect your keyboard to"
        )
    logger.warning(
        "no MIDI input: neither ALSA nor JACK MIDI is available (%s). The instrument plays on without MIDI; "
        "OSC and --play still work. Fix: load the ALSA sequencer (modprobe snd-seq) or start a JACK server.",
        "; ".join(failures) or "no rtmidi backend compiled in",
    )
    return None
