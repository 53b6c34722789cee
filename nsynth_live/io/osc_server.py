"""OSC control server (python-osc over UDP): messages are parsed, validated and coalesced here.

One serving thread handles datagrams in arrival order (python-osc's ``BlockingOSCUDPServer`` run in
a daemon thread; the threading server starts a thread per packet, so XY moves could be applied out
of order). Everything that costs time happens on this thread, never on the engine's (Surge XT does
the same with its OSC thread):

- each message becomes a typed event or is dropped (:func:`nsynth_live.engine.osc.parse_osc`;
  address space and rules: ``docs/osc.md``); wrong argument counts and types are rejected;
- ``/nsynth/preset NAME`` reads and validates ``presets/NAME.toml`` here (:class:`PresetCache`: each
  file is parsed once per version, so a flood of preset changes costs a ``stat`` each), and the
  engine receives a ready :class:`~nsynth_live.presets.Preset` in
  ``SelectPreset(name, preset=...)``; unknown or invalid presets never reach the engine;
- events wait in an :class:`~nsynth_live.engine.osc.OscOutbox`: XY moves between two hops coalesce
  into the newest position, at most ``max_events_per_hop`` other events wait, and the engine's
  queue holds one :class:`~nsynth_live.engine.events.EventBatch` for all of them;
- warnings are rate-limited per kind (:class:`RateLimitedWarnings`: one line per second, then the
  number dropped), and every outcome is counted (:meth:`OscServer.stats`);
- the sender of each accepted message is remembered (:attr:`OscServer.controller`, an
  :class:`OscController`: its address, the XY address it uses and the XY it last sent), for the
  feedback thread (:mod:`nsynth_live.io.osc_feedback`) that sends the instrument's state back.

Bundles are applied on arrival, whatever their timetag (a future timetag would otherwise make the
serving thread sleep). OSC has no authentication, so the server binds to 127.0.0.1 unless told
otherwise.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from nsynth_live.engine.events import SelectPreset, SetX, SetXY, SetY
from nsynth_live.engine.osc import (
    DROPPED,
    OSC_MAX_EVENTS_PER_HOP,
    REASON_UNKNOWN_ADDRESS,
    OscOutbox,
    OscRouting,
    parse_osc,
)
from nsynth_live.presets import DEFAULT_PRESETS_DIR, Preset, PresetError, load_preset, preset_path

logger = logging.getLogger(__name__)

DEFAULT_OSC_HOST = "127.0.0.1"  # loopback only: OSC has no authentication
DEFAULT_OSC_PORT = 8000  # UDP port, TouchOSC's usual outgoing port
WARN_INTERVAL_SECONDS = 1.0  # s, at most one warning line per kind in this time

# Rejections the server adds to parse_osc's REJECT_REASONS (keys of ``rejected_by_reason``).
REASON_PRESET = "preset"  # unknown preset, refused name, unreadable or invalid preset file
REASON_QUEUE_FULL = "queue_full"  # more events than max_events_per_hop between two hops
REASON_ROUTER = "router"  # a custom router returned None (or raised)

# The addresses that move XY: a controller's last one is where the feedback sends XY back.
XY_ADDRESSES = ("/nsynth/xy", "/1/xy1", "/nsynth/x", "/nsynth/y")
MAX_REMEMBERED_CONTROLLERS = 64  # senders whose XY address is remembered (the oldest is forgotten)


@dataclass(frozen=True)
class OscController:
    """The sender of an accepted OSC message, as the feedback thread needs it.

    Attributes
    ----------
    host : str
        The sender's IPv4 address (as the socket reported it).
    port : int
        The sender's UDP source port (1..65535): where replies go unless ``--osc-reply`` says
        otherwise.
    xy_address : str
        The last XY address this sender used, one of :data:`XY_ADDRESSES`; ``"/nsynth/xy"`` if it
        never moved XY.
    xy : tuple or None
        The timbre position its last XY messages asked for, in the engine's coordinates (after
        ``swap_xy`` / ``invert_*``), ``(x, y)`` in [0, 1]; a coordinate it never sent is None
        (``/nsynth/x`` alone); None if it never moved XY.
    xy_at : float or None
        When its last XY message arrived (the server's clock, s); None if never.
    """

    host: str
    port: int
    xy_address: str = "/nsynth/xy"
    xy: tuple | None = None
    xy_at: float | None = None


class OscServerError(RuntimeError):
    """The OSC socket could not be bound (port in use, bad host)."""


class RateLimitedWarnings:
    """Logging warnings, at most one line per kind per ``interval_seconds``; the rest are counted.

    The next line of a kind (or :meth:`flush`) says how many of that kind were dropped meanwhile,
    so a flood of bad messages costs a counter increment each, not a write to stderr.

    Parameters
    ----------
    log : logging.Logger
        Where the lines go (level WARNING).
    interval_seconds : float
        Minimum time between two lines of one kind, > 0 s.
    clock : callable
        Monotonic time in s (tests pass a fake one).

    Attributes
    ----------
    lines_logged, lines_dropped : int
        Lines written and lines dropped by the rate limit, all kinds together.
    """

    def __init__(self, log: logging.Logger, *, interval_seconds: float = WARN_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not interval_seconds > 0:
            raise ValueError(f"interval_seconds must be > 0 s, got {interval_seconds!r}")
        self._log = log
        self._interval_seconds = float(interval_seconds)
        self._clock = clock
        self._last: dict[str, float] = {}  # kind -> time of its last line (s)
        self._dropped: dict[str, int] = {}  # kind -> lines dropped since then
        self.lines_logged = 0
        self.lines_dropped = 0

    def warning(self, kind: str, message: str, *args: Any) -> bool:
        """Log ``message % args`` unless a line of ``kind`` was logged less than the interval ago.

        Returns True when the line was written.
        """
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval_seconds:
            self._dropped[kind] = self._dropped.get(kind, 0) + 1
            self.lines_dropped += 1
            return False
        dropped = self._dropped.pop(kind, 0)
        if dropped:
            message += " (%d more %s warnings dropped in the last %.1f s)"
            args = (*args, dropped, kind, now - last)
        self._last[kind] = now
        self.lines_logged += 1
        self._log.warning(message, *args)
        return True

    def flush(self) -> None:
        """Log one line per kind whose dropped warnings were not reported yet."""
        for kind, dropped in sorted(self._dropped.items()):
            self._log.warning("OSC: %d more %s warnings dropped", dropped, kind)
            self.lines_logged += 1
        self._dropped.clear()


class PresetCache:
    """Presets by name, each file read and validated once per version (mtime, size, inode).

    A lookup costs one ``stat`` when the file has not changed; unknown, refused and invalid presets
    are remembered the same way (the error is raised again without reading anything). Used by one
    thread (the OSC server's).

    Parameters
    ----------
    presets_dir : path
        The folder of ``<name>.toml`` files (the engine's ``EngineConfig.presets_dir``).
    max_entries : int
        Names remembered (the oldest is forgotten beyond this), >= 1.

    Attributes
    ----------
    files_parsed : int
        Calls of :func:`nsynth_live.presets.load_preset` (cache misses: a new name or a new version).
    """

    def __init__(self, presets_dir: Path | str = DEFAULT_PRESETS_DIR, *, max_entries: int = 256) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries!r}")
        self.presets_dir = Path(presets_dir)
        self._max_entries = max_entries
        self._entries: dict[str, tuple[Path | None, object, Preset | PresetError]] = {}  # path, version, result
        self.files_parsed = 0

    def _version(self, path: Path | None) -> object:
        if path is None:
            return "refused"  # not a plain identifier, or outside the folder: never changes
        try:
            st = os.stat(path)
        except OSError:
            return "missing"
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def get(self, name: str) -> Preset:
        """The validated preset ``name``.

        Raises
        ------
        PresetError
            Unknown preset (listing the valid ones), refused name, unreadable, corrupt or invalid
            file (see :func:`nsynth_live.presets.load_preset`).
        """
        entry = self._entries.get(name)
        if entry is None:
            try:
                path = preset_path(name, presets_dir=self.presets_dir)
            except PresetError:
                path = None
        else:
            path = entry[0]
        version = self._version(path)
        if entry is not None and entry[1] == version:
            result = entry[2]
        else:
            self.files_parsed += 1
            try:
                result = load_preset(name, presets_dir=self.presets_dir)
            except PresetError as error:
                result = error
            self._entries.pop(name, None)
            while len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]  # the oldest
            self._entries[name] = (path, version, result)
        if isinstance(result, PresetError):
            raise PresetError(str(result))  # a fresh one: re-raising the cached one would grow its traceback
        return result


def _as_parser(router, swap_xy: bool, invert_x: bool, invert_y: bool) -> tuple[Callable, bool]:
    """``(parse(address, args) -> OscRouting | Event | None, is_parse_osc)`` for a router argument."""
    if router is None:
        return functools.partial(parse_osc, swap_xy=swap_xy, invert_x=invert_x, invert_y=invert_y), True
    return router, False


class OscServer:
    """UDP OSC server: parses, validates and coalesces messages on one thread for the engine.

    Parameters
    ----------
    post : callable
        ``post(batch)`` hands an :class:`~nsynth_live.engine.events.EventBatch` to the engine
        (``Engine.post``, thread-safe); the engine takes the batch's events once per hop.
    host : str
        Interface to bind; ``"127.0.0.1"`` (default) accepts local clients only, ``"0.0.0.0"`` all.
    port : int
        UDP port, 0..65535; 0 lets the OS choose (see :attr:`address`).
    router : callable, optional
        None (default): :func:`nsynth_live.engine.osc.parse_osc` with the axis options below.
        Another ``router(address, args) -> event | None`` (pure, never raising) is called as is;
        None counts as a rejection.
    swap_xy, invert_x, invert_y : bool
        Axis mapping of XY controllers (see :func:`~nsynth_live.engine.osc.parse_osc`); kept as
        attributes of the same names for the feedback, which maps XY back.
    presets_dir : path
        Where ``/nsynth/preset NAME`` finds ``NAME.toml`` (the engine's ``EngineConfig.presets_dir``).
    max_events_per_hop : int
        Events waiting for the engine's next hop before dropping (see
        :class:`~nsynth_live.engine.osc.OscOutbox`); XY moves coalesce and do not count.
    warn_interval_seconds : float
        At most one warning line per kind of problem in this time (s).
    clock : callable
        Monotonic time in s, for the warning rate limit and :attr:`OscController.xy_at`.

    Attributes
    ----------
    controller : OscController or None
        The sender of the last accepted message (None until one arrives over UDP); replaced as a
        whole (one reference assignment), so another thread reads a consistent one.
    messages_received : int
        OSC messages decoded (those inside bundles included).
    messages_rejected : int
        Messages that reached no event: the sum of :attr:`rejected_by_reason`.
    rejected_by_reason : dict of str to int
        Rejections by reason: ``parse_osc``'s ``REJECT_REASONS``, ``"preset"``, ``"queue_full"``,
        ``"router"``.
    messages_ignored : int
        ``/1/xy1/z`` touch states (accepted, no event).
    events_posted : int
        Events handed to the outbox (queued or merged into a pending one).
    packets_malformed : int
        Datagrams that are not OSC at all.

    The counters are written by the serving thread only; :meth:`stats` gives them all.
    """

    def __init__(
        self,
        post: Callable[[Any], None],
        *,
        host: str = DEFAULT_OSC_HOST,
        port: int = DEFAULT_OSC_PORT,
        router: Callable[[str, tuple], Any] | None = None,
        swap_xy: bool = False,
        invert_x: bool = False,
        invert_y: bool = False,
        presets_dir: Path | str = DEFAULT_PRESETS_DIR,
        max_events_per_hop: int = OSC_MAX_EVENTS_PER_HOP,
        warn_interval_seconds: float = WARN_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(port, bool) or not 0 <= int(port) <= 65535:
            raise ValueError(f"OSC port must be in 0..65535, got {port!r}")
        self._parse, self._parses_osc = _as_parser(router, swap_xy, invert_x, invert_y)
        self.swap_xy, self.invert_x, self.invert_y = bool(swap_xy), bool(invert_x), bool(invert_y)
        self._clock = clock
        self.controller: OscController | None = None
        self._controllers: dict[tuple[str, int], OscController] = {}  # by (host, port), oldest first
        self.outbox = OscOutbox(post, max_events_per_hop=max_events_per_hop)
        self.presets = PresetCache(presets_dir)
        self.warnings = RateLimitedWarnings(logger, interval_seconds=warn_interval_seconds, clock=clock)
        self._host = host
        self._port = int(port)
        self._server = None
        self._thread: threading.Thread | None = None
        self.messages_received = 0
        self.messages_rejected = 0
        self.rejected_by_reason: dict[str, int] = {}
        self.messages_ignored = 0
        self.events_posted = 0
        self.packets_malformed = 0

    # -- serving-thread side -------------------------------------------------------------------
    def _reject(self, reason: str, address: Any, args: Sequence[Any], detail: str) -> None:
        self.messages_rejected += 1
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1
        if reason in (REASON_UNKNOWN_ADDRESS, REASON_ROUTER):
            # controllers send plenty of messages nobody asked for: debug level only
            logger.debug("OSC %r %.200r: %s; ignored", address, args, detail)
        else:
            self.warnings.warning(reason, "OSC %.100s %.200r: %s; message ignored", address, args, detail)

    def _route(self, address: Any, args: tuple) -> OscRouting:
        try:
            result = self._parse(address, args)
        except Exception as error:  # noqa: BLE001 - routers promise not to raise; be safe anyway
            return OscRouting(reason=REASON_ROUTER, detail=f"router failed: {error!r}")
        if self._parses_osc:
            return result
        if result is None:
            return OscRouting(reason=REASON_ROUTER, detail="no event")
        return OscRouting(event=result)

    def _note_controller(self, sender: Any, address: Any, event: Any) -> None:
        """Remember ``sender`` (a socket address) as :attr:`controller`, with its XY address."""
        try:
            key = (str(sender[0]), int(sender[1]))
        except (TypeError, ValueError, IndexError):
            return
        previous = self._controllers.pop(key, None)
        if previous is None:
            previous = OscController(*key)
            while len(self._controllers) >= MAX_REMEMBERED_CONTROLLERS:
                del self._controllers[next(iter(self._controllers))]  # the oldest
        controller = previous
        if address in XY_ADDRESSES and isinstance(event, (SetXY, SetX, SetY)):
            old_x, old_y = previous.xy if previous.xy is not None else (None, None)
            xy = (event.x if isinstance(event, (SetXY, SetX)) else old_x,
                  event.y if isinstance(event, (SetXY, SetY)) else old_y)
            controller = OscController(key[0], key[1], address, xy, self._clock())
        self._controllers[key] = controller
        self.controller = controller

    def handle_message(self, address: str, args: Sequence[Any], sender: Any = None) -> None:
        """Route one decoded OSC message into the outbox (never raises).

        Public so that tests and the OSC documentation can exercise routing without sockets.
        ``sender``: the ``(host, port)`` it came from; when given and the message is accepted
        (an event, or ignored by design), it becomes :attr:`controller`.
        """
        self.messages_received += 1
        try:
            args = tuple(args)
        except TypeError:
            args = (args,)
        routing = self._route(address, args)
        if sender is not None and routing.reason is None:
            self._note_controller(sender, address, routing.event)
        if routing.clamped:
            self.warnings.warning("clamped", "OSC %s: %s", address, routing.detail)
        event = routing.event
        if event is None:
            if routing.reason is None:
                self.messages_ignored += 1
            else:
                self._reject(routing.reason, address, args, routing.detail)
            return
        if isinstance(event, SelectPreset) and event.preset is None:
            try:
                event = SelectPreset(event.name, preset=self.presets.get(event.name))
            except PresetError as error:
                self._reject(REASON_PRESET, address, args, str(error))
                return
        outcome = self.outbox.put(event)
        if outcome == DROPPED:
            self._reject(REASON_QUEUE_FULL, address, args,
                         f"more than {self.outbox.max_events_per_hop} events waiting for the engine's next hop")
        else:
            self.events_posted += 1

    def handle_datagram(self, data: bytes, sender: Any = None) -> None:
        """Decode one UDP datagram (message or bundle) and route its messages (never raises).

        ``sender``: the ``(host, port)`` it came from (see :meth:`handle_message`).
        """
        from pythonosc import osc_packet

        try:
            packet = osc_packet.OscPacket(data)
            messages = [(timed.message.address, timed.message.params) for timed in packet.messages]
        except Exception as error:  # noqa: BLE001 - ParseError, and python-osc may raise others on garbage
            self.packets_malformed += 1
            self.warnings.warning("malformed", "ignored a malformed OSC packet of %d bytes: %s", len(data), error)
            return
        for address, params in messages:
            self.handle_message(address, params, sender)

    # -- control side --------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters (for the app's ``nsynth-live stats:`` line)."""
        return {
            "messages_received": self.messages_received,
            "messages_rejected": self.messages_rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "messages_ignored": self.messages_ignored,
            "packets_malformed": self.packets_malformed,
            "events_posted": self.events_posted,
            "events_coalesced": self.outbox.events_coalesced,
            "events_dropped": self.outbox.events_dropped,
            "batches_posted": self.outbox.batches_posted,
            "preset_files_parsed": self.presets.files_parsed,
            "warnings_logged": self.warnings.lines_logged,
            "warnings_dropped": self.warnings.lines_dropped,
        }

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` actually bound (the port the OS chose if ``port=0``)."""
        if self._server is None:
            return (self._host, self._port)
        host, port = self._server.server_address[:2]
        return (host, port)

    def start(self) -> None:
        """Bind the socket and start the serving thread.

        Raises
        ------
        OscServerError
            If the socket cannot be bound (message gives host, port and the fix).
        """
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        owner = self

        class _Dispatcher(Dispatcher):
            def call_handlers_for_packet(self, data, client_address):  # noqa: D401 - python-osc hook
                owner.handle_datagram(data, client_address)
                return []

        class _Server(BlockingOSCUDPServer):
            def verify_request(self, request, client_address):  # let malformed data reach the handler
                return True

            def handle_error(self, request, client_address):  # never print tracebacks from the thread
                owner.warnings.warning("server", "OSC server error on a packet from %s", client_address)

        try:
            self._server = _Server((self._host, self._port), _Dispatcher())
        except OSError as error:
            raise OscServerError(
                f"cannot listen for OSC on {self._host}:{self._port}: {error}. "
                "Fix: choose a free port with --osc-port N, or turn OSC off with --no-osc"
            ) from error
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="nsynth-osc", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the socket and log the warnings still held back (idempotent)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._server = None
        self._thread = None
        self.warnings.flush()
