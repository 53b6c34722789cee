"""OSC messages -> typed engine events (pure, no sockets here), and the outbox that feeds them to the engine.

:func:`parse_osc` turns one message into an :class:`OscRouting`: the event, or the reason there is
none (one of :data:`REJECT_REASONS`), never raising and never logging, so that its caller (the OSC
server, on its own thread) counts and rate-limits. :func:`route_osc` is the same with a logging
warning per rejected message, for one-off use. A message is accepted only with exactly the documented
number and types of arguments; XY coordinates slightly outside [0, 1] are clamped (``clamped``).
Unknown addresses are rejected with reason ``"unknown_address"`` (controllers send many messages
nobody asked for: the server logs those at debug level only).

:class:`OscOutbox` is where the server's events wait for the next hop: XY moves coalesce into the
newest position, preset changes into the newest preset, and at most ``max_events_per_hop`` other
events wait (more are dropped and counted, except the releases: note-offs, sustain, all-notes-off,
all-sound-off, kept once each so that no note hangs). The engine receives one
:class:`~nsynth_live.engine.events.EventBatch` while the outbox holds anything.

Address space (arguments: f = float (an int is accepted), i = int (a float with an integral value
is accepted), s = string):

=========================  =========  =======================================================
address                    arguments  effect
=========================  =========  =======================================================
``/nsynth/xy``             f f        timbre position x, y in [0, 1] (clamped)
``/1/xy1``                 f f        TouchOSC (mk1 layouts) XY pad alias of ``/nsynth/xy``
``/nsynth/x``              f          timbre x only, in [0, 1]
``/nsynth/y``              f          timbre y only, in [0, 1]
``/nsynth/note_on``        i i        note on: MIDI pitch 0..127, velocity 0..127 (0 = off)
``/nsynth/note_off``       i          note off: MIDI pitch 0..127
``/nsynth/sustain``        i          sustain pedal: 0 = up, >= 1 = down (0..127)
``/nsynth/preset``         s          switch to preset ``presets/<name>.toml``
``/nsynth/all_notes_off``  (none)     release every note (sustain pedal respected)
``/nsynth/all_sound_off``  (none)     silence every voice with a fast ramp
=========================  =========  =======================================================

``/1/xy1/z`` (TouchOSC touch state, any arguments) is accepted and ignored. :func:`parse_osc` takes
``swap_xy``, ``invert_x`` and ``invert_y`` for controllers whose axes differ from ours.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Callable

from nsynth_live.engine.events import (
    CC_SUSTAIN_PEDAL,
    MIDI_DATA_MAX,
    AllNotesOff,
    AllSoundOff,
    ControlChange,
    Event,
    EventBatch,
    NoteOff,
    NoteOn,
    SelectPreset,
    SetX,
    SetXY,
    SetY,
)

logger = logging.getLogger(__name__)

# Why a message produced no event (keys of the server's ``rejected_by_reason`` counters).
REASON_UNKNOWN_ADDRESS = "unknown_address"  # no such address (or the address is not a string)
REASON_ARG_COUNT = "arg_count"  # a known address with too many or too few arguments
REASON_ARG_TYPE = "arg_type"  # an argument of the wrong type (a string for a number, a blob, ...)
REASON_ARG_VALUE = "arg_value"  # NaN, infinity, a pitch outside 0..127, a fractional MIDI value
REJECT_REASONS = (REASON_UNKNOWN_ADDRESS, REASON_ARG_COUNT, REASON_ARG_TYPE, REASON_ARG_VALUE)

# Events waiting for one hop (16 ms); ~4,000 events/s is far beyond any controller or sequencer.
OSC_MAX_EVENTS_PER_HOP = 64  # events


@dataclass(frozen=True)
class OscAddress:
    """One documented OSC address: its path, argument type tags and what it does."""

    address: str
    arguments: str
    description: str


OSC_ADDRESS_SPACE: tuple[OscAddress, ...] = (
    OscAddress("/nsynth/xy", "f f", "timbre position x, y in [0, 1] (out-of-range values clamped)"),
    OscAddress("/1/xy1", "f f", "TouchOSC (mk1 layouts) XY pad: alias of /nsynth/xy"),
    OscAddress("/nsynth/x", "f", "timbre position x only, in [0, 1]"),
    OscAddress("/nsynth/y", "f", "timbre position y only, in [0, 1]"),
    OscAddress("/nsynth/note_on", "i i", "note on: MIDI pitch 0..127, velocity 0..127 (0 = note off)"),
    OscAddress("/nsynth/note_off", "i", "note off: MIDI pitch 0..127"),
    OscAddress("/nsynth/sustain", "i", "sustain pedal: 0 = up, 1..127 = down"),
    OscAddress("/nsynth/preset", "s", "switch to the preset presets/<name>.toml"),
    OscAddress("/nsynth/all_notes_off", "", "release every note (the sustain pedal is respected)"),
    OscAddress("/nsynth/all_sound_off", "", "silence every voice with a fast ramp"),
)


def osc_address_space_markdown() -> str:
    """The address space as a Markdown table (for the README and ``--help`` texts)."""
    lines = ["| address | arguments | effect |", "|---|---|---|"]
    for entry in OSC_ADDRESS_SPACE:
        lines.append(f"| `{entry.address}` | {entry.arguments or '(none)'} | {entry.description} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class OscRouting:
    """What one OSC message means.

    Attributes
    ----------
    event : Event or None
        The engine event; None when the message is rejected or ignored by design (``/1/xy1/z``).
    reason : str or None
        One of :data:`REJECT_REASONS` when the message is rejected; None otherwise.
    detail : str
        Why it was rejected, or what was clamped (for a log line); "" when nothing happened.
    clamped : bool
        True when an XY coordinate outside [0, 1] was clamped (the event is still given).
    """

    event: Event | None = None
    reason: str | None = None
    detail: str = ""
    clamped: bool = False


class _Rejected(Exception):
    """Internal: a known address with unusable arguments."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _as_float(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Rejected(REASON_ARG_TYPE, f"{what} must be a number, got {value!r} ({type(value).__name__})")
    out = float(value)
    if not math.isfinite(out):
        raise _Rejected(REASON_ARG_VALUE, f"{what} must be finite, got {value!r}")
    return out


def _as_unit(value, what: str, clamps: list) -> float:
    out = _as_float(value, what)
    if out < 0.0 or out > 1.0:
        clamped = min(max(out, 0.0), 1.0)
        clamps.append(f"{what}={value!r} outside [0, 1], clamped to {clamped:g}")
        return clamped
    return out


def _as_midi(value, what: str) -> int:
    out = _as_float(value, what)
    if out != int(out):
        raise _Rejected(REASON_ARG_VALUE, f"{what} must be an integer, got {value!r}")
    if not 0 <= out <= MIDI_DATA_MAX:
        raise _Rejected(REASON_ARG_VALUE, f"{what} must be in [0, {MIDI_DATA_MAX}], got {value!r}")
    return int(out)


def _expect(args: tuple, count: int) -> None:
    if len(args) != count:
        raise _Rejected(REASON_ARG_COUNT, f"expected {count} argument(s), got {len(args)}: {args!r}")


def _event(address: str, args: tuple, clamps: list, swap_xy: bool, invert_x: bool, invert_y: bool):
    """The event of one message (None: ignored by design); raises _Rejected."""
    if address in ("/nsynth/xy", "/1/xy1"):
        _expect(args, 2)
        x = _as_unit(args[0], "x", clamps)
        y = _as_unit(args[1], "y", clamps)
        if swap_xy:
            x, y = y, x
        return SetXY(1.0 - x if invert_x else x, 1.0 - y if invert_y else y)
    if address == "/nsynth/x":
        _expect(args, 1)
        x = _as_unit(args[0], "x", clamps)
        return SetX(1.0 - x if invert_x else x)
    if address == "/nsynth/y":
        _expect(args, 1)
        y = _as_unit(args[0], "y", clamps)
        return SetY(1.0 - y if invert_y else y)
    if address == "/nsynth/note_on":
        _expect(args, 2)
        pitch_midi = _as_midi(args[0], "pitch")
        velocity = _as_midi(args[1], "velocity")
        return NoteOn(pitch_midi, velocity) if velocity > 0 else NoteOff(pitch_midi)
    if address == "/nsynth/note_off":
        _expect(args, 1)
        return NoteOff(_as_midi(args[0], "pitch"))
    if address == "/nsynth/sustain":
        _expect(args, 1)
        value = _as_midi(args[0], "sustain")
        return ControlChange(CC_SUSTAIN_PEDAL, MIDI_DATA_MAX if value > 0 else 0)
    if address == "/nsynth/preset":
        _expect(args, 1)
        if not isinstance(args[0], str):
            raise _Rejected(REASON_ARG_TYPE, f"preset name must be a string, got {args[0]!r}")
        if not args[0]:
            raise _Rejected(REASON_ARG_VALUE, "preset name must not be empty")
        return SelectPreset(args[0])
    if address == "/nsynth/all_notes_off":
        _expect(args, 0)
        return AllNotesOff()
    if address == "/nsynth/all_sound_off":
        _expect(args, 0)
        return AllSoundOff()
    if address == "/1/xy1/z":
        return None
    raise _Rejected(REASON_UNKNOWN_ADDRESS, "unknown address")


def parse_osc(
    address: str,
    args: tuple = (),
    *,
    swap_xy: bool = False,
    invert_x: bool = False,
    invert_y: bool = False,
) -> OscRouting:
    """Turn one OSC message into an engine event, or say why not (pure: no logging, never raises).

    Parameters
    ----------
    address : str
        OSC address pattern as received (e.g. ``"/nsynth/xy"``); see :data:`OSC_ADDRESS_SPACE`.
    args : tuple
        The decoded OSC arguments (python-osc passes them as ``*args``).
    swap_xy, invert_x, invert_y : bool
        Axis mapping for XY controllers (applied to ``/nsynth/xy`` and ``/1/xy1``; invert also to
        ``/nsynth/x`` and ``/nsynth/y``).

    Returns
    -------
    OscRouting
        ``event`` set for an accepted message; ``reason`` (one of :data:`REJECT_REASONS`) and
        ``detail`` for a rejected one; both None for ``/1/xy1/z``.
    """
    if not isinstance(address, str):
        return OscRouting(reason=REASON_UNKNOWN_ADDRESS, detail=f"address must be a str, got {address!r}")
    try:
        args = tuple(args)
    except TypeError:
        args = (args,)
    clamps: list[str] = []
    try:
        event = _event(address, args, clamps, swap_xy, invert_x, invert_y)
    except _Rejected as rejected:
        return OscRouting(reason=rejected.reason, detail=rejected.detail)
    except Exception as error:  # noqa: BLE001 - a controller must never crash the server thread
        return OscRouting(reason=REASON_ARG_VALUE, detail=f"unexpected error {error!r}")
    return OscRouting(event=event, detail="; ".join(clamps), clamped=bool(clamps))


def route_osc(
    address: str,
    args: tuple = (),
    *,
    swap_xy: bool = False,
    invert_x: bool = False,
    invert_y: bool = False,
) -> Event | None:
    """:func:`parse_osc`, returning only the event and logging each rejection or clamp.

    For one-off use: one warning per malformed message (unknown addresses at debug level). The OSC
    server calls :func:`parse_osc` and rate-limits its own warnings instead.

    Returns
    -------
    Event or None
        None for unknown addresses, malformed messages and ``/1/xy1/z``. Never raises.
    """
    routing = parse_osc(address, args, swap_xy=swap_xy, invert_x=invert_x, invert_y=invert_y)
    if routing.clamped:
        logger.warning("OSC %s: %s", address, routing.detail)
    if routing.reason == REASON_UNKNOWN_ADDRESS:
        logger.debug("OSC %r: %s, ignored", address, routing.detail)
    elif routing.reason is not None:
        logger.warning("OSC %s: %s; message ignored", address, routing.detail)
    return routing.event


# ---------------------------------------------------------------------------------------- outbox
_POSITION = (SetXY, SetX, SetY)
QUEUED, COALESCED, DROPPED = "queued", "coalesced", "dropped"


def _release_key(event) -> object | None:
    """Key under which an event that releases sound is kept once past the limit (None: droppable)."""
    if isinstance(event, NoteOff):
        return ("note_off", event.pitch_midi)
    if isinstance(event, ControlChange):
        return ("control_change", event.controller)  # the newest value of each controller
    if isinstance(event, (AllNotesOff, AllSoundOff)):
        return type(event)
    return None


class OscOutbox:
    """Events from the OSC thread waiting for the engine's next hop; the engine sees one batch.

    :meth:`put` (producer thread) queues an event; while the outbox holds anything, exactly one
    :class:`~nsynth_live.engine.events.EventBatch` sits in the engine's queue, and the engine's
    :meth:`take` (through that batch) empties the outbox. Between two takes:

    - position events (:class:`SetXY`, :class:`SetX`, :class:`SetY`) merge into ONE pending event
      (the newest x and y; exact, since each coordinate is last-writer-wins and the engine applies a
      hop's events at one instant);
    - :class:`SelectPreset` events merge into the newest one;
    - other events queue in order up to ``max_events_per_hop`` (the merged position and preset do
      not count: they are always kept). Past the limit, note-offs, controller values (sustain), all-notes-off and
      all-sound-off are kept once each (newest value, after the queued events), so that a flood
      never leaves a note hanging; any other event is dropped and counted.

    So a take returns at most ``max_events_per_hop + 133`` events (a position, a preset, 128
    note-offs, 1 controller, 2 all-offs), whatever arrived.

    Parameters
    ----------
    post : callable
        ``post(batch)``: hands an :class:`EventBatch` to the engine (``Engine.post``); thread-safe.
    max_events_per_hop : int
        Events (>= 1) queued between two takes before dropping starts.

    Attributes
    ----------
    events_queued, events_coalesced, events_dropped, batches_posted : int
        Counters since creation (written under the outbox's lock).
    """

    def __init__(self, post: Callable[[EventBatch], None], *, max_events_per_hop: int = OSC_MAX_EVENTS_PER_HOP):
        if isinstance(max_events_per_hop, bool) or not isinstance(max_events_per_hop, int) or max_events_per_hop < 1:
            raise ValueError(f"max_events_per_hop must be an int >= 1, got {max_events_per_hop!r}")
        self._post = post
        self.max_events_per_hop = max_events_per_hop
        self._lock = threading.Lock()
        self._pending: list = []
        self._queued_ordinary = 0  # events of _pending that count against the limit
        self._position_index: int | None = None
        self._position: list = [None, None]  # pending x, y (None: not moved)
        self._preset_index: int | None = None
        self._releases: dict = {}  # past the limit: release key -> newest event
        self._batch_out = False  # an EventBatch is in the engine's queue, not taken yet
        self._batch = EventBatch(self.take)
        self.events_queued = 0
        self.events_coalesced = 0
        self.events_dropped = 0
        self.batches_posted = 0

    def __len__(self) -> int:
        """Events a take would return now."""
        with self._lock:
            return len(self._pending) + len(self._releases)

    def put(self, event) -> str:
        """Queue ``event`` for the next hop (producer thread; never raises, never blocks long).

        Returns
        -------
        str
            ``"queued"``, ``"coalesced"`` (merged into a pending event) or ``"dropped"`` (limit).
        """
        with self._lock:
            outcome = self._put_locked(event)
            post = outcome != DROPPED and not self._batch_out
            if post:
                self._batch_out = True
                self.batches_posted += 1
        if post:
            self._post(self._batch)
        return outcome

    def _put_locked(self, event) -> str:
        if isinstance(event, _POSITION):
            x = event.x if isinstance(event, (SetXY, SetX)) else self._position[0]
            y = event.y if isinstance(event, (SetXY, SetY)) else self._position[1]
            self._position = [x, y]
            merged = SetXY(x, y) if x is not None and y is not None else (SetX(x) if y is None else SetY(y))
            return self._slot(merged, "_position_index")
        if isinstance(event, SelectPreset):
            return self._slot(event, "_preset_index")
        if self._queued_ordinary < self.max_events_per_hop:
            self._pending.append(event)
            self._queued_ordinary += 1
            self.events_queued += 1
            return QUEUED
        key = _release_key(event)
        if key is not None:
            self._releases.pop(key, None)  # re-insert: the newest one goes last
            self._releases[key] = event
            self.events_queued += 1
            return QUEUED
        self.events_dropped += 1
        return DROPPED

    def _slot(self, event, index_name: str) -> str:
        index = getattr(self, index_name)
        if index is not None:
            self._pending[index] = event
            self.events_coalesced += 1
            return COALESCED
        setattr(self, index_name, len(self._pending))
        self._pending.append(event)
        self.events_queued += 1
        return QUEUED

    def take(self) -> tuple:
        """Empty the outbox: its events, oldest first (engine thread, through the posted batch)."""
        with self._lock:
            events = tuple(self._pending) + tuple(self._releases.values())
            self._pending = []
            self._queued_ordinary = 0
            self._releases = {}
            self._position_index = None
            self._position = [None, None]
            self._preset_index = None
            self._batch_out = False
        return events
