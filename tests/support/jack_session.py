"""A JACK dummy server and a probe client for end-to-end tests and latency measurements.

The JACK dummy driver runs a real, deadline-enforcing audio graph without a sound card
(docs/running.md, "What the JACK test harness relies on"). :class:`JackServer` starts one under a
unique server name; :class:`JackProbe` is a second JACK client (the ``JACK-Client`` package) that
sends MIDI to the instrument's JACK MIDI port and captures the instrument's audio output ports in
the same process callback, so both share JACK's frame clock: the MIDI-in to audio-out latency is a
difference of two frame times, exact to the sample.

Needs the Debian packages ``jackd2`` (jackd, jack_wait) and the PyPI package ``JACK-Client``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


class JackUnavailable(RuntimeError):
    """jackd or the JACK-Client package is missing, or the server did not come up."""


def jack_tools_missing() -> str | None:
    """Why JACK tests cannot run here (None when they can)."""
    for tool in ("jackd", "jack_wait"):
        if shutil.which(tool) is None:
            return f"{tool} not found: install the Debian package jackd2"
    try:
        import jack  # noqa: F401
    except (ImportError, OSError) as error:
        return f"the JACK-Client package is not usable ({error}): pip install JACK-Client"
    return None


SERVER_CULPRIT = "jackd"  # what :attr:`JackXrun.culprits` names when the server's own cycle was late
_DRIVER_LATE_MARKER = "JackTimedDriver::Process XRun = "
_CLIENT_LATE_MARKER = "JackEngine::XRun: client = "


@dataclass(frozen=True)
class JackXrun:
    """One xrun as jackd logged it, and who caused it.

    JACK2's timed drivers (dummy, loopback) log ``JackTimedDriver::Process XRun = N usec`` when the
    driver's own thread finds itself past the next cycle's deadline: the server woke or ran late,
    re-anchors its clock and starts the next cycle at once. At the start of each cycle the engine
    logs ``JackEngine::XRun: client = C was not finished, state = S`` for every client that has
    not finished the previous cycle: ``Running`` is a client that was scheduled and was still
    computing at the deadline; ``Triggered`` one that had not started (it waited for an upstream
    client, or for the CPU). Source: JACK2 ``common/JackTimedDriver.cpp`` (``ProcessWait``) and
    ``common/JackEngine.cpp`` (``CheckXRun``).

    Attributes
    ----------
    seconds : float
        ``time.monotonic()`` when the first line of the xrun was read from jackd's output.
    driver_late : bool
        The server's driver was past its deadline: clients triggered just before its catch-up
        cycle had no time at all, so none of them is to blame.
    driver_usec : int or None
        The ``N usec`` jackd logged with the driver's lateness (its cycle's run time at that
        point; not the size of the stall).
    unfinished : tuple of (str, str)
        ``(client, state)`` for each client JACK found unfinished, in log order.
    """

    seconds: float
    driver_late: bool
    driver_usec: int | None
    unfinished: tuple[tuple[str, str], ...]

    @property
    def culprits(self) -> tuple[str, ...]:
        """Who made this xrun: ``("jackd",)`` when the driver was late; else the clients that were
        ``Running`` at the deadline; else (none had started) every unfinished client, since any of
        them may have been the one that was not woken in time."""
        if self.driver_late:
            return (SERVER_CULPRIT,)
        running = tuple(client for client, state in self.unfinished if state == "Running")
        return running or tuple(client for client, _ in self.unfinished)


def parse_jack_xruns(lines: Iterable[tuple[float, str]], *, link_seconds: float) -> list[JackXrun]:
    """Group jackd's log lines into xruns (see :class:`JackXrun`).

    Parameters
    ----------
    lines : iterable of (float, str)
        ``(time.monotonic() when read, line)`` in the order jackd wrote them.
    link_seconds : float
        A driver-late line and the engine's list of unfinished clients that follows within this
        time are one xrun (the engine checks the graph in the catch-up cycle, microseconds after
        the driver's line): one or two JACK periods.

    Returns
    -------
    list of JackXrun
        In log order. A driver-late line with no unfinished clients after it is an xrun of its own
        (JACK notified every client of it).
    """
    events: list[dict] = []
    open_event: dict | None = None  # the xrun whose client lines are still being read
    for seconds, line in lines:
        if _DRIVER_LATE_MARKER in line:
            text = line.split(_DRIVER_LATE_MARKER, 1)[1].split()[0]
            open_event = {"seconds": seconds, "driver_late": True,
                          "driver_usec": int(text) if text.lstrip("-").isdigit() else None, "unfinished": []}
            events.append(open_event)
        elif _CLIENT_LATE_MARKER in line:
            rest = line.split(_CLIENT_LATE_MARKER, 1)[1]
            client, _, state = rest.partition(" was not finished, state = ")
            state = state.strip() or "unknown"
            linkable = (open_event is not None and
                        (open_event["unfinished"] or seconds - open_event["seconds"] <= link_seconds))
            if not linkable:
                open_event = {"seconds": seconds, "driver_late": False, "driver_usec": None, "unfinished": []}
                events.append(open_event)
            open_event["unfinished"].append((client.strip(), state))
        elif open_event is not None and open_event["unfinished"]:
            open_event = None  # "Process error" (or any other line) ends the engine's list
    return [JackXrun(seconds=e["seconds"], driver_late=e["driver_late"], driver_usec=e["driver_usec"],
                     unfinished=tuple(e["unfinished"])) for e in events]


def realtime_scheduling_allowed() -> bool:
    """Whether this process may use SCHED_FIFO (root, or an rtprio limit), as JACK's realtime mode needs.

    Checked in a child process, so this process's own scheduling never changes.
    """
    import sys

    probe = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"
    try:
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class JackServer:
    """``jackd --no-realtime -d dummy`` under a unique name; a context manager.

    Parameters
    ----------
    sample_rate : int
        Hz of the server.
    period_frames : int
        Frames per JACK cycle (256 at 48 kHz: a deadline every 5.33 ms).
    name : str, optional
        Server name (default: ``nsynth-test-<random>``) so concurrent tests do not collide.
    log_path : Path, optional
        Where jackd's output goes, each line prefixed with the ``time.monotonic()`` it was read at
        (default: discarded; needed by :meth:`xruns` and :meth:`late_clients`).
    realtime : bool
        Run JACK's threads with real-time scheduling (needs the privilege; default False, as on CI
        machines: ``--no-realtime``).

    Attributes
    ----------
    env : dict
        ``os.environ`` plus ``JACK_DEFAULT_SERVER`` (and no server autostart) for client processes.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 48_000,
        period_frames: int = 256,
        name: str | None = None,
        log_path: Path | None = None,
        realtime: bool = False,
    ) -> None:
        self.realtime = bool(realtime)
        self.sample_rate = int(sample_rate)
        self.period_frames = int(period_frames)
        self.name = name or f"nsynth-test-{uuid.uuid4().hex[:8]}"
        self.log_path = log_path
        self.env = dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1",
                        JACK_NO_AUDIO_RESERVATION="1")
        self._process: subprocess.Popen | None = None
        self._log = None
        self._reader: threading.Thread | None = None
        self._lines: list[tuple[float, str]] = []  # (time.monotonic() when read, line); appended by the reader

    def start(self, *, timeout_seconds: float = 10.0) -> "JackServer":
        """Start jackd and wait until it accepts clients.

        Raises
        ------
        JackUnavailable
            If the tools are missing or the server is not up within ``timeout_seconds``.
        """
        missing = jack_tools_missing()
        if missing:
            raise JackUnavailable(missing)
        command = [
            "jackd", "--realtime" if self.realtime else "--no-realtime", "-n", self.name,
            "-d", "dummy", "-r", str(self.sample_rate), "-p", str(self.period_frames),
        ]
        self._lines = []
        self._log = open(self.log_path, "w") if self.log_path else None
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE if self._log else subprocess.DEVNULL, stderr=subprocess.STDOUT,
            env=self.env, start_new_session=True, text=True, errors="replace",
        )
        if self._log is not None:
            # jackd's log has no times; stamping each line as it arrives tells a driver-late line
            # apart from a later, unrelated xrun (jack_error writes to stderr, unbuffered).
            self._reader = threading.Thread(target=self._read_log, args=(self._process.stdout, self._log),
                                            name="jackd-log", daemon=True)
            self._reader.start()
        waited = subprocess.run(
            ["jack_wait", "-w", "-t", str(max(1, int(timeout_seconds)))],
            env=self.env, capture_output=True, text=True, timeout=timeout_seconds + 5,
        )
        if waited.returncode != 0 or self._process.poll() is not None:
            self.stop()
            raise JackUnavailable(
                f"jackd did not start ({' '.join(command)}): {waited.stdout.strip()} {waited.stderr.strip()}"
            )
        return self

    @property
    def pid(self) -> int | None:
        """Process id of the running jackd (None when stopped)."""
        return None if self._process is None else self._process.pid

    def _read_log(self, stream, log) -> None:
        for line in stream:
            stamp = time.monotonic()
            self._lines.append((stamp, line.rstrip("\n")))
            try:
                log.write(f"{stamp:.6f} {line}")
                log.flush()
            except ValueError:  # closed by stop() after its join timed out
                return

    def xruns(self) -> list[JackXrun]:
        """The xruns jackd has logged so far, each with its :attr:`JackXrun.culprits`.

        Empty without ``log_path``. A driver-late line and the unfinished clients logged within
        two periods after it are one xrun (see :func:`parse_jack_xruns`).
        """
        period_seconds = self.period_frames / self.sample_rate
        return parse_jack_xruns(list(self._lines), link_seconds=2.0 * period_seconds)

    def late_clients(self) -> dict[str, int]:
        """Xruns per culprit (a client, or ``"jackd"`` for the server itself); see :meth:`xruns`.

        Tells whose lateness caused an xrun: the instrument's audio (``nsynth-live-audio``), its
        MIDI input (``nsynth-live``, RtMidi's C++ code), the probe, or the server. Empty without
        ``log_path``.
        """
        counts: dict[str, int] = {}
        for xrun in self.xruns():
            for culprit in xrun.culprits:
                counts[culprit] = counts.get(culprit, 0) + 1
        return counts

    def stop(self) -> None:
        """Terminate jackd (kill after 5 s); idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)  # jackd exited: its output ends
            self._reader = None
        if process is not None and process.stdout is not None:
            process.stdout.close()
        if self._log is not None:
            self._log.close()
        self._log = None

    def __enter__(self) -> "JackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class JackProbe:
    """A JACK client that plays MIDI into the instrument and records its audio, on one clock.

    Parameters
    ----------
    server_name : str
        The JACK server to join.
    capture_seconds : float
        Capacity of the preallocated capture buffer (s).
    channels : int
        Audio inputs to record.
    client_name : str
        JACK client name (ports ``<client_name>:midi_out``, ``:in_1``, ``:in_2``).

    Attributes
    ----------
    sample_rate : int
        Hz of the server.
    xrun_count : int
        Xruns JACK reported to this client while it ran.
    xrun_seconds : list of float
        When the xruns after :meth:`start` happened (s after the capture start).
    """

    def __init__(
        self,
        *,
        server_name: str,
        capture_seconds: float = 20.0,
        channels: int = 2,
        client_name: str = "nsynth-probe",
    ) -> None:
        try:
            import jack
        except (ImportError, OSError) as error:
            raise JackUnavailable(f"the JACK-Client package is not usable ({error}): pip install JACK-Client") from error
        self._client = jack.Client(client_name, servername=server_name, no_start_server=True)
        self.sample_rate = int(self._client.samplerate)
        self._midi_out = self._client.midi_outports.register("midi_out")
        self._inputs = [self._client.inports.register(f"in_{i + 1}") for i in range(channels)]
        self._buffer = np.empty((int(capture_seconds * self.sample_rate), channels), dtype=np.float32)
        self._buffer.fill(0.0)  # touch every page now: no page faults in the real-time callback
        self._messages: list[bytes] = []
        self._message_frames = np.zeros(0, dtype=np.int64)  # relative to the capture start
        self.sent_frames = np.zeros(0, dtype=np.int64)  # relative to the capture start, as written
        self._next = 0
        self._armed = False
        self._running = False
        self.capture_start_frame: int | None = None  # absolute JACK frame time of buffer row 0
        self.capture_start_monotonic: float | None = None  # time.monotonic() at that cycle
        self.captured_frames = 0
        self.xrun_count = 0
        self.xrun_seconds: list[float] = []  # when each xrun happened, s after the capture start
        self._client.set_process_callback(self._process)
        self._client.set_xrun_callback(self._on_xrun)
        self._client.activate()

    # -- JACK thread -------------------------------------------------------------------------
    def _on_xrun(self, delay_usecs: float) -> None:
        self.xrun_count += 1
        if self.capture_start_frame is not None and len(self.xrun_seconds) < 1000:
            self.xrun_seconds.append((self._client.frame_time - self.capture_start_frame) / self.sample_rate)

    def _process(self, frames: int) -> None:
        self._midi_out.clear_buffer()
        if not self._armed:
            return
        cycle_start = self._client.last_frame_time
        if self.capture_start_frame is None:
            self.capture_start_frame = cycle_start
            self.capture_start_monotonic = time.monotonic()
        position = cycle_start - self.capture_start_frame
        while self._next < len(self._messages) and self._message_frames[self._next] < position + frames:
            offset = max(0, int(self._message_frames[self._next]) - position)
            self._midi_out.write_midi_event(offset, self._messages[self._next])
            self.sent_frames[self._next] = position + offset
            self._next += 1
        if 0 <= position and position + frames <= self._buffer.shape[0]:
            for channel, port in enumerate(self._inputs):
                self._buffer[position:position + frames, channel] = port.get_array()
            self.captured_frames = position + frames

    # -- control side ------------------------------------------------------------------------
    @property
    def midi_port_name(self) -> str:
        """Full JACK name of the probe's MIDI output (``<client>:midi_out``)."""
        return self._midi_out.name

    def input_port_names(self) -> list[str]:
        """Full JACK names of the probe's audio inputs, in channel order."""
        return [port.name for port in self._inputs]

    def ports(self, pattern: str = "", *, is_midi: bool = False, is_audio: bool = False) -> list[str]:
        """Names of the server's ports matching a regular expression."""
        return [p.name for p in self._client.get_ports(pattern, is_midi=is_midi, is_audio=is_audio)]

    def connect(self, source: str, destination: str) -> None:
        """Connect two JACK ports by full name (raises ``jack.JackError`` if JACK refuses)."""
        self._client.connect(source, destination)

    def start(self, timed_messages: Sequence[tuple[float, Sequence[int]]]) -> None:
        """Start capturing at the next JACK cycle and send each message at its time.

        Parameters
        ----------
        timed_messages : sequence of (seconds, MIDI bytes)
            Seconds after the capture start; sorted here.
        """
        ordered = sorted(timed_messages, key=lambda pair: pair[0])
        self._messages = [bytes(message) for _, message in ordered]
        self._message_frames = np.array([round(t * self.sample_rate) for t, _ in ordered], dtype=np.int64)
        self.sent_frames = np.full(len(ordered), -1, dtype=np.int64)
        self._next = 0
        self.capture_start_frame = None
        self.captured_frames = 0
        self._armed = True

    def wait_until(self, seconds: float, *, timeout_seconds: float = 60.0) -> None:
        """Block until ``seconds`` of audio have been captured."""
        deadline = time.monotonic() + timeout_seconds
        target = min(int(seconds * self.sample_rate), self._buffer.shape[0])
        while self.captured_frames < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"captured {self.captured_frames} of {target} frames in {timeout_seconds} s")
            # Sleep in one go rather than polling: each wake-up takes this process's GIL, which the
            # probe's real-time JACK callback then has to wait for if this thread is preempted.
            time.sleep(max(0.005, (target - self.captured_frames) / self.sample_rate))

    def captured(self) -> np.ndarray:
        """The capture so far, ``(frames, channels)`` float32 (a copy)."""
        return self._buffer[: self.captured_frames].copy()

    def close(self) -> None:
        """Stop capturing, deactivate and close the JACK client."""
        self._armed = False
        try:
            self._client.deactivate()
        finally:
            self._client.close()


READY_PREFIX = "nsynth-live ready "  # run_live.py prints this + JSON when it plays
STATS_PREFIX = "nsynth-live stats: "  # and this + JSON at exit


class InstrumentProcess:
    """``run_live.py`` running live as a subprocess on a JACK server.

    Parameters
    ----------
    arguments : sequence of str
        Extra ``run_live.py`` arguments (``--audio-device JACK`` and ``--stats-json`` are added).
    env : dict
        Environment (use :attr:`JackServer.env`).
    stats_path : Path
        Where the instrument writes its statistics at exit.
    repo_root : Path
        Folder holding ``run_live.py`` (the working directory of the process).
    python : str
        Interpreter (default: this one).
    script : Path, optional
        Entry script taking run_live.py's arguments (default: ``repo_root / "run_live.py"``).
    """

    def __init__(self, arguments: Sequence[str], *, env: dict, stats_path: Path, repo_root: Path,
                 python: str | None = None, script: Path | None = None) -> None:
        import sys
        import threading

        self.stats_path = Path(stats_path)
        run_env = dict(env)
        run_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root), env.get("PYTHONPATH", "")]))
        run_env["PYTHONUNBUFFERED"] = "1"
        command = [python or sys.executable, str(script or Path(repo_root) / "run_live.py"), "--audio-device", "JACK",
                   "--stats-json", str(self.stats_path), "--force", *arguments]
        self.command = command
        self.lines: list[str] = []
        self.ready: dict | None = None
        self.ready_monotonic: float | None = None  # time.monotonic() when the ready line was read
        self._ready_event = threading.Event()
        self._process = subprocess.Popen(command, cwd=repo_root, env=run_env, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        import json

        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith(READY_PREFIX):
                self.ready_monotonic = time.monotonic()
                self.ready = json.loads(line[len(READY_PREFIX):])
                self._ready_event.set()
        self._ready_event.set()  # the process ended: wake a waiter

    @property
    def output(self) -> str:
        """Everything the instrument printed so far (stdout and stderr), one string."""
        return "\n".join(self.lines)

    def wait_ready(self, *, timeout_seconds: float = 90.0) -> dict:
        """Block until the instrument plays; raise RuntimeError (with its output) if it does not."""
        self._ready_event.wait(timeout_seconds)
        if self.ready is None:
            self.stop()
            raise RuntimeError(f"the instrument did not become ready:\n$ {' '.join(self.command)}\n{self.output}")
        return self.ready

    def stop(self, *, timeout_seconds: float = 20.0) -> int:
        """Ctrl-C (SIGINT) the instrument, wait for it, return its exit code."""
        import signal

        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        self._reader.join(timeout=5)
        return self._process.returncode

    def wait(self, *, timeout_seconds: float) -> int:
        """Wait for the instrument to exit on its own (``--duration``, end of ``--play``); its exit code.

        Raises
        ------
        subprocess.TimeoutExpired
            If it is still running after ``timeout_seconds`` (it is then stopped).
        """
        try:
            self._process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        self._reader.join(timeout=5)
        return self._process.returncode

    def stats(self) -> dict:
        """The ``--stats-json`` object the instrument wrote at exit."""
        import json

        return json.loads(self.stats_path.read_text())


def onset_frame(audio: np.ndarray, *, start_frame: int, search_frames: int, threshold_ratio: float = 0.1,
                peak_frames: int | None = None) -> int | None:
    """First frame at or after ``start_frame`` whose magnitude reaches ``threshold_ratio`` x the peak.

    Parameters
    ----------
    audio : (frames,) float
        Mono capture.
    start_frame : int
        Where to start looking (the frame the MIDI note-on was sent at).
    search_frames : int
        How far to look for the onset.
    threshold_ratio : float
        Fraction of the note's peak magnitude (0.1 = -20 dB) that marks the onset.
    peak_frames : int, optional
        Span after ``start_frame`` over which the peak is taken (default: ``search_frames``).

    Returns
    -------
    int or None
        Absolute frame index, or None if the note never reached the threshold (silence).
    """
    span = np.abs(audio[start_frame:start_frame + (peak_frames or search_frames)])
    if span.size == 0:
        return None
    peak = float(span.max())
    if peak <= 1e-4:  # -80 dBFS: nothing played
        return None
    hits = np.flatnonzero(span[:search_frames] >= threshold_ratio * peak)
    return int(start_frame + hits[0]) if hits.size else None


INSTRUMENT_MIDI_CLIENT = "nsynth-live"  # the instrument's JACK MIDI input (and, on a JACK-only machine, its audio)
INSTRUMENT_AUDIO_CLIENT = "nsynth-live-audio"  # PortAudio's JACK client (nsynth_live.app.JACK_CLIENT_NAME)
# the instrument's audio ports: its audio process's own JACK client (nsynth-live:out_N) where MIDI is
# JACK-only, else PortAudio's (nsynth-live-audio:out_N; --audio-in-process, or an ALSA sequencer)
INSTRUMENT_AUDIO_PORTS = r"^nsynth-live(-audio)?:out_"


def connect_probe_to_instrument(server_name: str, *, capture_seconds: float, settle_seconds: float = 0.3) -> JackProbe:
    """A :class:`JackProbe` wired to a running instrument: probe MIDI -> instrument, its audio -> probe.

    Raises
    ------
    RuntimeError
        If the instrument's JACK MIDI port or its two audio outputs are not there (lists the ports).
    """
    probe = JackProbe(server_name=server_name, capture_seconds=capture_seconds)
    midi_ports = probe.ports(f"^{INSTRUMENT_MIDI_CLIENT}:", is_midi=True)
    audio_ports = sorted(probe.ports(INSTRUMENT_AUDIO_PORTS, is_audio=True))
    if not midi_ports or len(audio_ports) != 2:
        ports = probe.ports()
        probe.close()
        raise RuntimeError(f"instrument ports not found on JACK server {server_name}: {ports}")
    probe.connect(probe.midi_port_name, midi_ports[0])
    for source, destination in zip(audio_ports, probe.input_port_names()):
        probe.connect(source, destination)
    time.sleep(settle_seconds)  # let the graph settle after the connections
    return probe


def play_and_capture(instrument: "InstrumentProcess", server_name: str, messages, total_seconds: float
                     ) -> tuple[np.ndarray, np.ndarray, int]:
    """Send ``messages`` to a ready instrument and record its left output, then stop it.

    Returns
    -------
    (audio, sent_frames, jack_xruns)
        The capture's first channel, each message's frame, and the xruns the probe saw meanwhile.

    Raises
    ------
    AssertionError
        If the instrument did not exit with code 0 (its output in the message).
    """
    try:
        probe = connect_probe_to_instrument(server_name, capture_seconds=total_seconds + 1)
        xruns_before = probe.xrun_count
        probe.start(messages)
        probe.wait_until(total_seconds)
        jack_xruns = probe.xrun_count - xruns_before
        audio = probe.captured()[:, 0]
        sent = probe.sent_frames
        probe.close()
    finally:
        exit_code = instrument.stop()
    assert exit_code == 0, instrument.output
    return audio, sent, jack_xruns


def note_schedule(pitches: Sequence[int], *, note_seconds: float, gap_seconds: float, lead_seconds: float = 0.3,
                  velocity: int = 100) -> list[tuple[float, list[int]]]:
    """Note-on / note-off messages (channel 1) for a sequence of separated notes.

    Returns
    -------
    list of (seconds, [status, pitch, velocity])
        Note ``i``'s note-on is message ``2 i`` and its note-off ``2 i + 1``.
    """
    messages: list[tuple[float, list[int]]] = []
    for index, pitch in enumerate(pitches):
        on = lead_seconds + index * (note_seconds + gap_seconds)
        messages += [(on, [0x90, int(pitch), int(velocity)]), (on + note_seconds, [0x80, int(pitch), 0])]
    return messages


def note_latencies_ms(audio: np.ndarray, sent_frames: np.ndarray, sample_rate: int, *,
                      search_seconds: float = 0.3, threshold_db: float = -20.0) -> list[float | None]:
    """MIDI-in to audio-out latency of each note of a :func:`note_schedule` capture (ms).

    The onset is the first sample at ``threshold_db`` of the note's peak (:func:`onset_frame`):
    -20 dB includes part of the instrument's attack, -40 dB marks its first audible sound. None
    marks a note that was not heard.
    """
    latencies: list[float | None] = []
    for on_frame, off_frame in zip(sent_frames[0::2], sent_frames[1::2]):
        onset = onset_frame(audio, start_frame=int(on_frame), search_frames=int(search_seconds * sample_rate),
                            peak_frames=int(off_frame - on_frame), threshold_ratio=10.0 ** (threshold_db / 20.0))
        latencies.append(None if onset is None else 1000.0 * (onset - int(on_frame)) / sample_rate)
    return latencies
