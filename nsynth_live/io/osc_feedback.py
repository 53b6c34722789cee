"""OSC feedback: the instrument's state sent back to the controller, so that a tablet follows MIDI.

A daemon thread (:class:`OscFeedback`) wakes at most ``max_rate_hz`` times a second (30), reads the
state (:class:`FeedbackState`: XY, preset, voice count, output peak; :func:`engine_feedback_state`
reads them off the live engine without locking, a benign race for a display) and sends, one UDP
datagram per message, only what changed since it was last sent to that target:

===============================  =========  ======================================================
address                          arguments  value
===============================  =========  ======================================================
``/nsynth/xy``                   f f        timbre position x, y in [0, 1] (4 decimals)
``/1/xy1``                       f f        the same, to a controller that moves XY with ``/1/xy1``
``/nsynth/x`` and ``/nsynth/y``  f, f       the same, to a controller that moves XY with
                                            ``/nsynth/x`` or ``/nsynth/y`` (two faders)
``/nsynth/preset``               s          the preset's name
``/nsynth/voices``               i          voices sounding (held, sustained or releasing)
``/nsynth/peak``                 f          output peak in dBFS, -96.0 (silence) .. 0.0, 0.5 dB steps
===============================  =========  ======================================================

XY goes out on the address the controller last moved XY with (:attr:`OscController.xy_address`),
mapped back through the server's ``swap_xy`` / ``invert_x`` / ``invert_y`` so the pad shows what
it would send for that position. While the controller is moving XY itself (an XY message from it
less than ``xy_hold_seconds`` ago) no XY is sent to it (the echo of an older position would make
the pad jump under the finger), and the position it sent counts as shown.

Target: ``reply_to`` (``--osc-reply HOST:PORT``) if given, else the address and UDP *source port*
of the last controller whose message was accepted (:attr:`OscServer.controller`). A new target gets
the whole state at once, and the whole state is sent again every ``refresh_seconds`` (UDP loses
datagrams; a tablet app may have been restarted). Nothing here blocks the engine: the thread only
reads attributes; send errors (network unreachable) are rate-limited warnings, and the message is
tried again on the next wake-up.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from nsynth_live.io.osc_server import WARN_INTERVAL_SECONDS, OscController, RateLimitedWarnings

logger = logging.getLogger(__name__)

FEEDBACK_MAX_RATE_HZ = 30.0  # updates per second at most (one update: the messages whose value changed)
XY_HOLD_SECONDS = 0.25  # s: no XY back to a controller that moved XY itself more recently than this
REFRESH_SECONDS = 2.0  # s: the whole state is sent again this often
PEAK_FLOOR_DBFS = -96.0  # dBFS sent for silence (and anything quieter)
PEAK_STEP_DB = 0.5  # dB: the peak is rounded to this step (smaller changes are not sent)
XY_DECIMALS = 4  # decimals of the XY sent (smaller changes are not sent)

ADDRESS_XY = "/nsynth/xy"
ADDRESS_TOUCHOSC_XY = "/1/xy1"
ADDRESS_X = "/nsynth/x"
ADDRESS_Y = "/nsynth/y"
ADDRESS_PRESET = "/nsynth/preset"
ADDRESS_VOICES = "/nsynth/voices"
ADDRESS_PEAK = "/nsynth/peak"


@dataclass(frozen=True)
class FeedbackState:
    """What the feedback reports.

    Attributes
    ----------
    xy : tuple of float
        Timbre position ``(x, y)`` in the engine's coordinates, each in [0, 1].
    preset : str
        Name of the current preset.
    voices : int
        Voices sounding, >= 0.
    peak : float
        Output peak level, linear (``max |sample|``; 1.0 is 0 dBFS), >= 0.
    """

    xy: tuple[float, float]
    preset: str
    voices: int
    peak: float = 0.0


def engine_feedback_state(engine: Any, runner: Any = None) -> FeedbackState:
    """Read :class:`FeedbackState` off a live engine (another thread renders it: no lock, each
    attribute read once; fine for a display).

    Parameters
    ----------
    engine : Engine
        Its ``xy``, ``preset.name`` and ``active_voice_count``.
    runner : RealtimeRunner, optional
        Its ``output_peak`` (peak meter of the rendered hops); None or absent: peak 0.0.
    """
    peak = getattr(runner, "output_peak", 0.0) if runner is not None else 0.0
    return FeedbackState(xy=tuple(engine.xy), preset=str(engine.preset.name),
                         voices=int(engine.active_voice_count), peak=float(peak))


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?"  # one part of a host name (RFC 1123)
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")


class OscReplyError(ValueError):
    """A ``--osc-reply`` value that is not ``HOST:PORT`` with an IPv4 host and a port in 1..65535."""


def parse_reply_target(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(ipv4_address, port)``; HOST may be a name (resolved here, once).

    Raises
    ------
    OscReplyError
        No ``:``, an empty host, a port that is not an integer in 1..65535, an IPv6 address, a host
        that is not a host name, or a name that does not resolve to an IPv4 address; the message
        quotes the value and says what is expected.
    """
    expected = "expected HOST:PORT, e.g. 192.168.1.20:9000 (TouchOSC's default incoming port is 9000)"
    host, colon, port_text = str(text).strip().rpartition(":")
    if not colon or not host:
        raise OscReplyError(f"{text!r} is not HOST:PORT: {expected}")
    if host.startswith("[") or ":" in host:
        raise OscReplyError(f"{text!r}: IPv6 is not supported (the OSC server is IPv4): {expected}")
    try:
        port = int(port_text)
    except ValueError:
        raise OscReplyError(f"{text!r}: the port {port_text!r} is not a number in 1..65535: {expected}") from None
    if not 1 <= port <= 65535:
        raise OscReplyError(f"{text!r}: the port must be in 1..65535, got {port}: {expected}")
    try:
        return str(ipaddress.IPv4Address(host)), port
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", host):  # getaddrinfo would read 1.2.3 as 1.2.0.3
        raise OscReplyError(f"{text!r}: {host!r} is not an IPv4 address (four numbers 0..255): {expected}")
    if not _HOST_NAME.fullmatch(host):
        raise OscReplyError(f"{text!r}: {host!r} is neither an IPv4 address nor a host name: {expected}")
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as error:
        raise OscReplyError(f"{text!r}: cannot resolve the host {host!r} ({error}); give its IPv4 address") from None
    return str(infos[0][4][0]), port


def xy_for_controller(xy: tuple[float, float], *, swap_xy: bool = False, invert_x: bool = False,
                      invert_y: bool = False) -> tuple[float, float]:
    """The XY a controller sends for the engine position ``xy``: the inverse of
    :func:`~nsynth_live.engine.osc.parse_osc`'s axis mapping for ``/nsynth/xy`` and ``/1/xy1``.

    ``parse_osc`` swaps first, then inverts; so this inverts, then swaps. Coordinates in [0, 1].
    """
    x, y = xy
    x = 1.0 - x if invert_x else x
    y = 1.0 - y if invert_y else y
    return (y, x) if swap_xy else (x, y)


def peak_dbfs(peak: float) -> float:
    """Linear peak (>= 0; 1.0 = full scale) -> dBFS in [``PEAK_FLOOR_DBFS``, 0], ``PEAK_STEP_DB`` steps.

    Silence, NaN and anything below the floor give the floor; full scale and above give 0.0.
    """
    try:
        peak = float(peak)
    except (TypeError, ValueError):
        return PEAK_FLOOR_DBFS
    if not peak > 0.0:  # silence, negative, NaN
        return PEAK_FLOOR_DBFS
    if peak >= 1.0:  # full scale and beyond (inf included)
        return 0.0
    level = 20.0 * math.log10(peak)
    level = round(level / PEAK_STEP_DB) * PEAK_STEP_DB
    return float(min(0.0, max(PEAK_FLOOR_DBFS, level))) + 0.0  # + 0.0: no -0.0


def _round_unit(value: float) -> float:
    return round(min(1.0, max(0.0, float(value))), XY_DECIMALS)


def xy_messages(xy: tuple, xy_address: str, *, swap_xy: bool = False, invert_x: bool = False,
                invert_y: bool = False) -> dict[str, tuple]:
    """The XY messages for a controller that moves XY with ``xy_address``: ``{address: args}``.

    ``xy`` in the engine's coordinates; a None coordinate (only ``/nsynth/x`` from a controller)
    gives no message for it. ``/1/xy1`` -> ``/1/xy1 x y`` mapped back through the axis options;
    ``/nsynth/x`` or ``/nsynth/y`` -> both ``/nsynth/x x`` and ``/nsynth/y y`` (only the inversions
    apply to them, as in ``parse_osc``); anything else -> ``/nsynth/xy x y`` mapped back.
    """
    x, y = xy
    if xy_address in (ADDRESS_X, ADDRESS_Y):
        out = {}
        if x is not None:
            out[ADDRESS_X] = (_round_unit(1.0 - x if invert_x else x),)
        if y is not None:
            out[ADDRESS_Y] = (_round_unit(1.0 - y if invert_y else y),)
        return out
    if x is None or y is None:
        return {}
    address = ADDRESS_TOUCHOSC_XY if xy_address == ADDRESS_TOUCHOSC_XY else ADDRESS_XY
    cx, cy = xy_for_controller((x, y), swap_xy=swap_xy, invert_x=invert_x, invert_y=invert_y)
    return {address: (_round_unit(cx), _round_unit(cy))}


def state_messages(state: FeedbackState, xy_address: str = ADDRESS_XY, *, swap_xy: bool = False,
                   invert_x: bool = False, invert_y: bool = False) -> dict[str, tuple]:
    """All the feedback messages for ``state``: ``{address: args}`` (XY as :func:`xy_messages`,
    then ``/nsynth/preset s``, ``/nsynth/voices i``, ``/nsynth/peak f`` in dBFS)."""
    out = xy_messages(state.xy, xy_address, swap_xy=swap_xy, invert_x=invert_x, invert_y=invert_y)
    out[ADDRESS_PRESET] = (str(state.preset),)
    out[ADDRESS_VOICES] = (int(state.voices),)
    out[ADDRESS_PEAK] = (peak_dbfs(state.peak),)
    return out


def encode_message(address: str, args: tuple) -> bytes:
    """One OSC message as a datagram (python-osc; str -> s, int -> i, float -> f)."""
    from pythonosc.osc_message_builder import OscMessageBuilder

    builder = OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


class OscFeedback:
    """Sends the instrument's state to the controller at most ``max_rate_hz`` times a second.

    Parameters
    ----------
    state : callable
        ``state() -> FeedbackState``, called on the feedback thread (e.g.
        ``functools.partial(engine_feedback_state, engine, runner)``); an exception is a
        rate-limited warning and that update is skipped.
    controller : callable
        ``controller() -> OscController | None``: the last controller that spoke (normally
        ``lambda: server.controller``; see :meth:`for_server`).
    reply_to : tuple (str, int), optional
        Fixed target ``(ipv4, port)`` (``--osc-reply``, see :func:`parse_reply_target`); None:
        the last controller's address and source port.
    swap_xy, invert_x, invert_y : bool
        The OSC server's axis options; XY is mapped back through them.
    max_rate_hz : float
        Updates per second at most, > 0 (the thread's wake-up rate).
    refresh_seconds : float or None
        The whole state is sent again this often (s, > 0); None: only changes.
    xy_hold_seconds : float
        No XY to a controller whose own XY message is more recent than this (s, >= 0).
    clock : callable
        Monotonic time in s (the OSC server's clock: :attr:`OscController.xy_at` is compared to it).
    send : callable, optional
        ``send(datagram: bytes, target: (host, port))``; None: a UDP socket of this object's.
        Raising ``OSError`` counts as a send error.
    warn_interval_seconds : float
        At most one warning line per kind in this time (s).

    Attributes
    ----------
    updates, messages_sent, send_errors, state_errors : int
        Wake-ups that sent something, messages sent, sends that failed, ``state()`` failures.
    target : tuple (str, int) or None
        Where the last update went.
    """

    def __init__(
        self,
        state: Callable[[], FeedbackState],
        controller: Callable[[], OscController | None] = lambda: None,
        *,
        reply_to: tuple[str, int] | None = None,
        swap_xy: bool = False,
        invert_x: bool = False,
        invert_y: bool = False,
        max_rate_hz: float = FEEDBACK_MAX_RATE_HZ,
        refresh_seconds: float | None = REFRESH_SECONDS,
        xy_hold_seconds: float = XY_HOLD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        send: Callable[[bytes, tuple[str, int]], Any] | None = None,
        warn_interval_seconds: float = WARN_INTERVAL_SECONDS,
    ) -> None:
        if not (isinstance(max_rate_hz, (int, float)) and math.isfinite(max_rate_hz) and max_rate_hz > 0):
            raise ValueError(f"max_rate_hz must be > 0, got {max_rate_hz!r}")
        if refresh_seconds is not None and not refresh_seconds > 0:
            raise ValueError(f"refresh_seconds must be > 0 s or None, got {refresh_seconds!r}")
        if not xy_hold_seconds >= 0:
            raise ValueError(f"xy_hold_seconds must be >= 0 s, got {xy_hold_seconds!r}")
        self._state = state
        self._controller = controller
        self.reply_to = None if reply_to is None else (str(reply_to[0]), int(reply_to[1]))
        self._axes = {"swap_xy": bool(swap_xy), "invert_x": bool(invert_x), "invert_y": bool(invert_y)}
        self.period_seconds = 1.0 / float(max_rate_hz)
        self.refresh_seconds = refresh_seconds
        self.xy_hold_seconds = float(xy_hold_seconds)
        self._clock = clock
        self._socket: socket.socket | None = None
        self._send = send if send is not None else self._send_udp
        self.warnings = RateLimitedWarnings(logger, interval_seconds=warn_interval_seconds, clock=clock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.target: tuple[str, int] | None = None
        self._shown: dict[str, tuple] = {}  # address -> args the target was last sent (or showed itself)
        self._last_update: float | None = None  # clock time of the last tick that looked at the state
        self._refreshed_at: float | None = None
        self._seen_xy_at: float | None = None  # the controller XY message already counted as shown
        self.updates = 0
        self.messages_sent = 0
        self.send_errors = 0
        self.state_errors = 0

    @classmethod
    def for_server(cls, server: Any, state: Callable[[], FeedbackState], **kwargs: Any) -> "OscFeedback":
        """Feedback for an :class:`~nsynth_live.io.osc_server.OscServer`: its last controller, its
        axis options and its clock; ``kwargs`` as for the constructor (``reply_to``...).

        Raises
        ------
        OscReplyError
            ``reply_to`` is the server's own port on this machine (the instrument would play its
            own feedback back to itself, fighting MIDI moves).
        """
        reply_to = kwargs.get("reply_to")
        if reply_to is not None:
            host, port = server.address
            own = ipaddress.IPv4Address(reply_to[0]).is_loopback or reply_to[0] == host or host == "0.0.0.0"
            if int(reply_to[1]) == int(port) and own:
                raise OscReplyError(f"--osc-reply {reply_to[0]}:{reply_to[1]} is this instrument's own OSC port: "
                                    "give the controller's address and incoming port (TouchOSC's default: 9000)")
        kwargs.setdefault("clock", getattr(server, "_clock", time.monotonic))
        return cls(state, lambda: server.controller, swap_xy=server.swap_xy, invert_x=server.invert_x,
                   invert_y=server.invert_y, **kwargs)

    # -- sending -------------------------------------------------------------------------------
    def _send_udp(self, datagram: bytes, target: tuple[str, int]) -> None:
        if self._socket is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)  # --osc-reply may be a broadcast address
            sock.setblocking(False)  # a full send buffer drops the message, never waits
            self._socket = sock
        self._socket.sendto(datagram, target)

    def _send_message(self, target: tuple[str, int], address: str, args: tuple) -> bool:
        try:
            self._send(encode_message(address, args), target)
        except (OSError, ValueError, OverflowError) as error:  # unreachable network, full buffer, bad value
            self.send_errors += 1
            self.warnings.warning("send", "OSC feedback to %s:%d failed (%s); retrying", target[0], target[1], error)
            return False
        self.messages_sent += 1
        return True

    # -- one update ----------------------------------------------------------------------------
    def due(self, now: float | None = None) -> bool:
        """True when an update may run now (the last one is at least ``1 / max_rate_hz`` old)."""
        now = self._clock() if now is None else now
        return self._last_update is None or now - self._last_update >= self.period_seconds * 0.999

    def tick(self) -> int:
        """Send what changed, if an update is due (the thread calls this; tests call it directly).

        Returns
        -------
        int
            Messages sent (0: nothing changed, no target yet, not due, or every send failed).
            Never raises for a bad state or a failed send.
        """
        now = self._clock()
        if not self.due(now):
            return 0
        controller = self._controller()
        target = self.reply_to
        if target is None and controller is not None:
            target = (controller.host, controller.port)
        if target is None:
            return 0  # nobody to tell yet: look again next time
        self._last_update = now
        if target != self.target:
            self.target = target
            self._shown = {}  # a new target gets everything
            self._refreshed_at = now
        elif self.refresh_seconds is not None and now - self._refreshed_at >= self.refresh_seconds:
            self._shown = {}
            self._refreshed_at = now
        try:
            state = self._state()
            xy_address = controller.xy_address if controller is not None else ADDRESS_XY
            messages = state_messages(state, xy_address, **self._axes)
        except Exception as error:  # noqa: BLE001 - a display must never take the instrument down
            self.state_errors += 1
            self.warnings.warning("state", "OSC feedback could not read the instrument's state: %r", error)
            return 0
        holding = False
        if controller is not None and controller.xy_at is not None and controller.xy is not None:
            if controller.xy_at != self._seen_xy_at:  # a new XY move by the controller: it shows that
                self._seen_xy_at = controller.xy_at
                self._shown.update(xy_messages(controller.xy, controller.xy_address, **self._axes))
            holding = now - controller.xy_at < self.xy_hold_seconds
        sent = 0
        for address, args in messages.items():
            if self._shown.get(address) == args:
                continue
            if holding and address in (ADDRESS_XY, ADDRESS_TOUCHOSC_XY, ADDRESS_X, ADDRESS_Y):
                continue
            if self._send_message(target, address, args):
                self._shown[address] = args
                sent += 1
        if sent:
            self.updates += 1
        return sent

    # -- thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        try:  # a display: below the instrument's threads, even under --realtime-priority (inherited)
            tid = threading.get_native_id()
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        except (AttributeError, OSError):
            pass
        while not self._stop.wait(self.period_seconds):
            try:
                self.tick()
            except Exception as error:  # noqa: BLE001 - never let the thread die silently
                self.warnings.warning("feedback", "OSC feedback update failed: %r", error)

    def start(self) -> None:
        """Start the feedback thread (a daemon); it sends nothing until there is a target."""
        if self._thread is not None:
            raise RuntimeError("OscFeedback already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="nsynth-osc-feedback", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, close the socket, log the warnings held back (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self.warnings.flush()

    def stats(self) -> dict[str, Any]:
        """The counters, and the target as ``"host:port"`` (None before the first update)."""
        return {
            "target": None if self.target is None else f"{self.target[0]}:{self.target[1]}",
            "updates": self.updates,
            "messages_sent": self.messages_sent,
            "send_errors": self.send_errors,
            "state_errors": self.state_errors,
        }


__all__ = [
    "FeedbackState",
    "OscFeedback",
    "OscReplyError",
    "engine_feedback_state",
    "encode_message",
    "parse_reply_target",
    "peak_dbfs",
    "state_messages",
    "xy_for_controller",
    "xy_messages",
]
