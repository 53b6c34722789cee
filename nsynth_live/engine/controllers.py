"""MIDI controllers -> what the engine changes: XY, pitch bend, brightness and gain amounts.

:class:`ControllerState` keeps the per-channel state a synthesizer needs to read controllers the way
the MIDI 1.0 specification defines them (``docs/midi.md`` states the rules in this project's words):

* **14-bit controllers.** Controllers 0-31 are the MSBs of 14-bit values whose LSBs are controllers
  32-63 (CC 12 pairs with CC 44, CC 13 with CC 45). A controller is read as 7 bits (0..127 -> 0..1)
  until its LSB has been seen on that channel, then as 14 bits ((MSB * 128 + LSB) / 16383). An MSB
  resets the LSB to 0, as the specification asks of a receiver, so a controller that sends MSB then
  LSB lands on the exact 14-bit value.
* **Registered parameter 0, pitch bend sensitivity.** CC 101 / CC 100 select a parameter (127/127
  is "none"; selecting an NRPN with CC 99 / CC 98 deselects it); with (0, 0) selected, data entry CC 6 sets the range in semitones (and resets the
  cents) and CC 38 its cents. Other parameters are ignored. Ranges above 24 semitones are clamped.
* **Reset all controllers** (CC 121) centres the bend, zeroes pressure and the mod wheel and
  deselects the parameter; it keeps the bend range and the XY position (RP-015).

The preset's :class:`~nsynth_live.presets.Controls` says which controllers move X and Y and what
the mod wheel (CC 1) and channel pressure drive. Pure bookkeeping: no audio here.
"""

from __future__ import annotations

import numpy as np

from nsynth_live.engine.events import (
    CC_DATA_ENTRY_LSB,
    CC_DATA_ENTRY_MSB,
    CC_LSB_OFFSET,
    CC_MOD_WHEEL,
    CC_RESET_ALL_CONTROLLERS,
    CC_RPN_LSB,
    CC_RPN_MSB,
    MIDI_CHANNELS,
    MIDI_DATA_MAX,
    PITCH_BEND_CENTER,
)
from nsynth_live.presets import BEND_RANGE_MAX_SEMITONES, Controls

_RPN_NULL = 127
CC_NRPN_LSB, CC_NRPN_MSB = 98, 99  # selecting an NRPN deselects the RPN (MIDI 1.0 spec)
_FOURTEEN_BIT_MAX = 16383


def bend_semitones(value: int, range_semitones: float) -> float:
    """Semitones of a 14-bit pitch bend ``value`` (0..16383, 8192 centre) at ``range_semitones``.

    Down uses 8192 steps and up 8191, so both ends reach exactly the range (0 -> -range,
    16383 -> +range)."""
    offset = int(value) - PITCH_BEND_CENTER
    return range_semitones * offset / (PITCH_BEND_CENTER if offset < 0 else PITCH_BEND_CENTER - 1)


class ControllerState:
    """Per-channel controller state of one instrument.

    Parameters
    ----------
    controls : Controls
        The preset's mapping (replace it with :meth:`set_controls` on a preset change).

    Attributes
    ----------
    bend_semitones : (16,) float64
        Each channel's present bend in semitones.
    amounts : dict
        ``{"brightness": float, "gain": float}`` in [0, 1]: the newest value of the controller
        assigned to each (0 when none is).
    """

    def __init__(self, controls: Controls) -> None:
        self.controls = controls
        self._msb = np.zeros((MIDI_CHANNELS, 32), dtype=np.int64)
        self._lsb = np.zeros((MIDI_CHANNELS, 32), dtype=np.int64)
        self._fine = np.zeros((MIDI_CHANNELS, 32), dtype=bool)  # an LSB was seen: read 14 bits
        self._rpn = np.full((MIDI_CHANNELS, 2), _RPN_NULL, dtype=np.int64)  # (MSB, LSB) selected
        self._range = np.full(MIDI_CHANNELS, controls.bend_range, dtype=np.float64)
        self._range_set = np.zeros(MIDI_CHANNELS, dtype=bool)  # an RPN 0 set this channel's range
        self._range_cents = np.zeros(MIDI_CHANNELS, dtype=np.int64)
        self._bend_value = np.full(MIDI_CHANNELS, PITCH_BEND_CENTER, dtype=np.int64)
        self.bend_semitones = np.zeros(MIDI_CHANNELS, dtype=np.float64)
        self.amounts = {"brightness": 0.0, "gain": 0.0}

    def set_controls(self, controls: Controls) -> None:
        """A new preset's mapping; channels whose range no RPN set take its ``bend_range``."""
        self.controls = controls
        assigned = {controls.mod_wheel, controls.aftertouch}
        for target in self.amounts:  # an amount no controller drives any more returns to rest
            if target not in assigned:
                self.amounts[target] = 0.0
        self._range[~self._range_set] = controls.bend_range
        for channel in range(MIDI_CHANNELS):
            self._update_bend(channel)

    def bend_range(self, channel: int) -> float:
        """Channel ``channel``'s pitch bend range in semitones."""
        return float(self._range[channel])

    # ------------------------------------------------------------------ events
    def control_change(self, controller: int, value: int, channel: int) -> dict:
        """Apply one controller message; returns what changed: ``{"x": v}``, ``{"y": v}`` (in
        [0, 1]), ``{"bend": channel}`` (its range changed), ``{"brightness": v}``, ``{"gain": v}``,
        or ``{}``."""
        if controller == CC_RESET_ALL_CONTROLLERS:
            return self._reset(channel)
        if controller in (CC_RPN_MSB, CC_RPN_LSB):
            self._rpn[channel, 0 if controller == CC_RPN_MSB else 1] = value
            return {}
        if controller in (CC_NRPN_MSB, CC_NRPN_LSB):  # a non-registered parameter: data entry is not ours
            self._rpn[channel] = _RPN_NULL
            return {}
        if controller in (CC_DATA_ENTRY_MSB, CC_DATA_ENTRY_LSB):
            if tuple(self._rpn[channel]) != (0, 0):  # only RPN 0, pitch bend sensitivity
                return {}
            if controller == CC_DATA_ENTRY_MSB:
                self._range_cents[channel] = 0
                semitones = value
            else:
                self._range_cents[channel] = min(value, 99)
                semitones = int(self._range[channel])
            self._range[channel] = min(semitones + self._range_cents[channel] / 100.0, BEND_RANGE_MAX_SEMITONES)
            self._range_set[channel] = True
            self._update_bend(channel)
            return {"bend": channel}
        unit = self._unit_value(controller, value, channel)
        if unit is None:
            return {}
        c = self.controls
        msb = controller - CC_LSB_OFFSET if CC_LSB_OFFSET <= controller < 2 * CC_LSB_OFFSET else controller
        if msb == c.x_cc:
            return {"x": unit}
        if msb == c.y_cc:
            return {"y": unit}
        if msb == CC_MOD_WHEEL:
            return self._assign(c.mod_wheel, unit)
        return {}

    def channel_pressure(self, value: int, channel: int) -> dict:
        """Apply channel aftertouch (``value`` 0..127); returns what changed, as
        :meth:`control_change`."""
        return self._assign(self.controls.aftertouch, value / MIDI_DATA_MAX)

    def pitch_bend(self, value: int, channel: int) -> float:
        """Apply a 14-bit pitch bend; returns the channel's bend in semitones."""
        self._bend_value[channel] = value
        self._update_bend(channel)
        return float(self.bend_semitones[channel])

    # ------------------------------------------------------------------ internals
    def _unit_value(self, controller: int, value: int, channel: int) -> float | None:
        """The controller's value in [0, 1] after this message (14-bit pairs honoured); None for
        a controller above 63 (only 7-bit controllers there, read directly by the caller)."""
        if controller < CC_LSB_OFFSET:
            self._msb[channel, controller] = value
            self._lsb[channel, controller] = 0
        elif controller < 2 * CC_LSB_OFFSET:
            controller -= CC_LSB_OFFSET
            self._lsb[channel, controller] = value
            self._fine[channel, controller] = True
        else:
            return value / MIDI_DATA_MAX
        if self._fine[channel, controller]:
            return float(self._msb[channel, controller] * 128 + self._lsb[channel, controller]) / _FOURTEEN_BIT_MAX
        return float(self._msb[channel, controller]) / MIDI_DATA_MAX

    def _assign(self, target: str, unit: float) -> dict:
        if target in ("x", "y"):
            return {target: unit}
        if target in self.amounts:
            self.amounts[target] = unit
            return {target: unit}
        return {}

    def _update_bend(self, channel: int) -> None:
        self.bend_semitones[channel] = bend_semitones(self._bend_value[channel], self._range[channel])

    def _reset(self, channel: int) -> dict:
        self._rpn[channel] = _RPN_NULL
        self._bend_value[channel] = PITCH_BEND_CENTER
        self._update_bend(channel)
        self._msb[channel, CC_MOD_WHEEL] = 0
        self._lsb[channel, CC_MOD_WHEEL] = 0
        changed = {"bend": channel}
        for target in (self.controls.mod_wheel, self.controls.aftertouch):
            if target in self.amounts:
                self.amounts[target] = 0.0
                changed[target] = 0.0
        return changed
