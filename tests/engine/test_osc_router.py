import logging
import math

import pytest

from nsynth_live.engine.events import (
    AllNotesOff, AllSoundOff, ControlChange, NoteOff, NoteOn, SelectPreset, SetX, SetXY, SetY,
)
from nsynth_live.engine.osc import OSC_ADDRESS_SPACE, osc_address_space_markdown, route_osc


@pytest.mark.parametrize("address, args, expected", [
    ("/nsynth/xy", (0.25, 0.75), SetXY(0.25, 0.75)),
    ("/1/xy1", (0.1, 0.9), SetXY(0.1, 0.9)),
    ("/nsynth/xy", (0, 1), SetXY(0.0, 1.0)),
    ("/nsynth/x", (0.3,), SetX(0.3)),
    ("/nsynth/y", (0.6,), SetY(0.6)),
    ("/nsynth/note_on", (60, 100), NoteOn(60, 100)),
    ("/nsynth/note_on", (60.0, 100.0), NoteOn(60, 100)),  # TouchOSC sends floats
    ("/nsynth/note_on", (60, 0), NoteOff(60)),
    ("/nsynth/note_off", (60,), NoteOff(60)),
    ("/nsynth/sustain", (1,), ControlChange(64, 127)),
    ("/nsynth/sustain", (0,), ControlChange(64, 0)),
    ("/nsynth/preset", ("keys",), SelectPreset("keys")),
    ("/nsynth/all_notes_off", (), AllNotesOff()),
    ("/nsynth/all_sound_off", (), AllSoundOff()),
])
def test_valid_messages(address, args, expected):
    assert route_osc(address, args) == expected


@pytest.mark.parametrize("address, args", [
    ("/nsynth/xy", ("a", 0.5)),
    ("/nsynth/xy", (0.5,)),
    ("/nsynth/xy", (0.5, 0.5, 0.5)),
    ("/nsynth/xy", (math.nan, 0.5)),
    ("/nsynth/xy", (0.5, math.inf)),
    ("/nsynth/xy", (True, 0.5)),
    ("/nsynth/xy", (None, None)),
    ("/nsynth/note_on", (60.5, 100)),
    ("/nsynth/note_on", (200, 100)),
    ("/nsynth/note_on", ("C4", 100)),
    ("/nsynth/note_on", (60, -3)),
    ("/nsynth/note_off", ()),
    ("/nsynth/preset", (3,)),
    ("/nsynth/preset", ("",)),
    ("/nsynth/x", (b"\x00",)),
])
def test_malformed_messages_are_ignored_with_a_warning(address, args, caplog):
    with caplog.at_level(logging.WARNING, logger="nsynth_live.engine.osc"):
        assert route_osc(address, args) is None
    assert any(address in record.getMessage() for record in caplog.records)


def test_out_of_range_xy_is_clamped_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="nsynth_live.engine.osc"):
        assert route_osc("/nsynth/xy", (1.7, -0.2)) == SetXY(1.0, 0.0)
    assert "clamped" in caplog.text


def test_unknown_addresses_and_touch_state_are_ignored():
    assert route_osc("/some/other", (1, 2)) is None
    assert route_osc("/1/xy1/z", (1.0,)) is None
    assert route_osc(42, ()) is None  # not even a string


def test_axis_mapping():
    assert route_osc("/1/xy1", (0.2, 0.9), swap_xy=True) == SetXY(0.9, 0.2)
    event = route_osc("/1/xy1", (0.2, 0.9), invert_x=True, invert_y=True)
    assert (event.x, event.y) == (pytest.approx(0.8), pytest.approx(0.1))


def test_address_space_documents_every_routed_address():
    table = osc_address_space_markdown()
    addresses = {entry.address for entry in OSC_ADDRESS_SPACE}
    for address in ("/nsynth/xy", "/1/xy1", "/nsynth/x", "/nsynth/y", "/nsynth/note_on",
                    "/nsynth/note_off", "/nsynth/preset", "/nsynth/all_notes_off"):
        assert address in addresses and f"`{address}`" in table
    # every documented address is routed (none falls through as unknown)
    samples = {"f f": (0.5, 0.5), "f": (0.5,), "i i": (60, 100), "i": (60,), "s": ("default",), "": ()}
    for entry in OSC_ADDRESS_SPACE:
        assert route_osc(entry.address, samples[entry.arguments]) is not None, entry.address
