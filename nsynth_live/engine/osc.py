"""OSC messages -> typed engine events (pure, never raises; no sockets here).

The io layer's OSC server (one serving thread, so XY updates keep their order) calls
:func:`route_osc` for every message and posts the event it returns. Malformed messages (wrong
number or type of arguments, NaN/inf, out-of-range values) are ignored with a logging warning;
XY coordinates slightly outside [0, 1] are clamped with a warning. Unknown addresses are ignored
(logged at debug level, since controllers send many messages nobody asked for).

Address space (arguments: f = float, i = int (a float with an integral value is accepted), s = string):

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

``/1/xy1/z`` (TouchOSC touch state) is accepted and ignored. :func:`route_osc` takes
``swap_xy``, ``invert_x`` and ``invert_y`` for controllers whose axes differ from ours.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from nsynth_live.engine.events import (
    CC_SUSTAIN_PEDAL,
    MIDI_DATA_MAX,
    AllNotesOff,
    AllSoundOff,
    ControlChange,
    Event,
    NoteOff,
    NoteOn,
    SelectPreset,
    SetX,
    SetXY,
    SetY,
)

logger = logging.getLogger(__name__)



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


class _Malformed(Exception):
    """Internal: a known address with unusable arguments."""


def _as_float(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Malformed(f"{what} must be a number, got {value!r} ({type(value).__name__})")
    out = float(value)
    if not math.isfinite(out):
        raise _Malformed(f"{what} must be finite, got {value!r}")
    return out


def _as_unit(value, what: str, address: str) -> float:
    out = _as_float(value, what)
    if out < 0.0 or out > 1.0:
        clamped = min(max(out, 0.0), 1.0)
        logger.warning("OSC %s: %s=%r outside [0, 1], clamped to %g", address, what, value, clamped)
        return clamped
    return out


def _as_midi(value, what: str, *, low: int = 0) -> int:
    out = _as_float(value, what)
    if out != int(out):
        raise _Malformed(f"{what} must be an integer, got {value!r}")
    if not low <= out <= MIDI_DATA_MAX:
        raise _Malformed(f"{what} must be in [{low}, {MIDI_DATA_MAX}], got {value!r}")
    return int(out)


def _expect(args: tuple, count: int) -> None:
    if len(args) != count:
        raise _Malformed(f"expected {count} argument(s), got {len(args)}: {args!r}")


def _xy(args, address, swap_xy, invert_x, invert_y) -> SetXY:
    _expect(args, 2)
    x = _as_unit(args[0], "x", address)
    y = _as_unit(args[1], "y", address)
    if swap_xy:
        x, y = y, x
    if invert_x:
        x = 1.0 - x
    if invert_y:
        y = 1.0 - y
    return SetXY(x, y)


def route_osc(
    address: str,
    args: tuple = (),
    *,
    swap_xy: bool = False,
    invert_x: bool = False,
    invert_y: bool = False,
) -> Event | None:
    """Turn one OSC message into an engine event.

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
    Event or None
        None for unknown addresses and malformed messages (logged). Never raises.
    """
    try:
        if not isinstance(address, str):
            logger.warning("OSC address must be a str, got %r; ignored", address)
            return None
        try:
            args = tuple(args)
        except TypeError:
            args = (args,)
        if address in ("/nsynth/xy", "/1/xy1"):
            return _xy(args, address, swap_xy, invert_x, invert_y)
        if address == "/nsynth/x":
            _expect(args, 1)
            x = _as_unit(args[0], "x", address)
            return SetX(1.0 - x if invert_x else x)
        if address == "/nsynth/y":
            _expect(args, 1)
            y = _as_unit(args[0], "y", address)
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
            if not isinstance(args[0], str) or not args[0]:
                raise _Malformed(f"preset name must be a non-empty string, got {args[0]!r}")
            return SelectPreset(args[0])
        if address == "/nsynth/all_notes_off":
            return AllNotesOff()
        if address == "/nsynth/all_sound_off":
            return AllSoundOff()
        if address == "/1/xy1/z":
            return None
        logger.debug("OSC %s: unknown address, ignored", address)
        return None
    except _Malformed as error:
        logger.warning("OSC %s: %s; message ignored", address, error)
        return None
    except Exception as error:  # never let a controller crash the server thread
        logger.warning("OSC %s: unexpected error %r; message ignored", address, error)
        return None
