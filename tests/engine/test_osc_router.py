"""The pure OSC router: accepted messages, rejections with their reasons, the documented table."""

import logging
import math

import pytest

from nsynth_live.engine.events import (
    AllNotesOff, AllSoundOff, ControlChange, NoteOff, NoteOn, SelectPreset, SetX, SetXY, SetY,
)
from nsynth_live.engine.osc import (
    OSC_ADDRESS_SPACE, REASON_ARG_COUNT, REASON_ARG_TYPE, REASON_ARG_VALUE, REASON_UNKNOWN_ADDRESS,
    osc_address_space_markdown, parse_osc, route_osc,
)


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
    routing = parse_osc(address, args)
    assert (routing.event, routing.reason, routing.clamped) == (expected, None, False)


@pytest.mark.parametrize("address, args, reason", [
    ("/nsynth/xy", ("a", 0.5), REASON_ARG_TYPE),
    ("/nsynth/xy", (0.5,), REASON_ARG_COUNT),
    ("/nsynth/xy", (0.5, 0.5, 0.5), REASON_ARG_COUNT),
    ("/nsynth/xy", (math.nan, 0.5), REASON_ARG_VALUE),
    ("/nsynth/xy", (0.5, math.inf), REASON_ARG_VALUE),
    ("/nsynth/xy", (True, 0.5), REASON_ARG_TYPE),
    ("/nsynth/xy", (None, None), REASON_ARG_TYPE),
    ("/nsynth/note_on", (60.5, 100), REASON_ARG_VALUE),
    ("/nsynth/note_on", (200, 100), REASON_ARG_VALUE),
    ("/nsynth/note_on", ("C4", 100), REASON_ARG_TYPE),
    ("/nsynth/note_on", (60, -3), REASON_ARG_VALUE),
    ("/nsynth/note_on", (60,), REASON_ARG_COUNT),
    ("/nsynth/note_off", (), REASON_ARG_COUNT),
    ("/nsynth/note_off", (60, 0), REASON_ARG_COUNT),
    ("/nsynth/sustain", (), REASON_ARG_COUNT),
    ("/nsynth/preset", (3,), REASON_ARG_TYPE),
    ("/nsynth/preset", ("",), REASON_ARG_VALUE),
    ("/nsynth/preset", ("keys", "synth"), REASON_ARG_COUNT),
    ("/nsynth/x", (b"\x00",), REASON_ARG_TYPE),
    ("/nsynth/all_notes_off", (1,), REASON_ARG_COUNT),  # docs/osc.md: no arguments, none accepted
    ("/nsynth/all_notes_off", (1.0,), REASON_ARG_COUNT),
    ("/nsynth/all_sound_off", (0,), REASON_ARG_COUNT),
])
def test_malformed_messages_are_rejected_with_a_reason_and_a_warning(address, args, reason, caplog):
    routing = parse_osc(address, args)
    assert routing.event is None and routing.reason == reason and routing.detail
    with caplog.at_level(logging.WARNING, logger="nsynth_live.engine.osc"):
        assert route_osc(address, args) is None
    assert any(address in record.getMessage() for record in caplog.records)


def test_parse_osc_never_logs(caplog):
    with caplog.at_level(logging.DEBUG, logger="nsynth_live.engine.osc"):
        parse_osc("/nsynth/xy", ("a", "b"))
        parse_osc("/nsynth/xy", (7.0, -2.0))
        parse_osc("/nowhere", ())
    assert caplog.records == []


def test_out_of_range_xy_is_clamped_with_a_warning(caplog):
    routing = parse_osc("/nsynth/xy", (1.7, -0.2))
    assert routing.event == SetXY(1.0, 0.0) and routing.clamped and "clamped" in routing.detail
    with caplog.at_level(logging.WARNING, logger="nsynth_live.engine.osc"):
        assert route_osc("/nsynth/xy", (1.7, -0.2)) == SetXY(1.0, 0.0)
    assert "clamped" in caplog.text


def test_unknown_addresses_and_touch_state_are_ignored():
    assert route_osc("/some/other", (1, 2)) is None
    assert parse_osc("/some/other", (1, 2)).reason == REASON_UNKNOWN_ADDRESS
    assert parse_osc(42, ()).reason == REASON_UNKNOWN_ADDRESS  # not even a string
    touch = parse_osc("/1/xy1/z", (1.0,))  # accepted and ignored: no event, no rejection
    assert touch.event is None and touch.reason is None
    assert route_osc("/1/xy1/z", (1.0,)) is None


def test_axis_mapping():
    assert route_osc("/1/xy1", (0.2, 0.9), swap_xy=True) == SetXY(0.9, 0.2)
    event = route_osc("/1/xy1", (0.2, 0.9), invert_x=True, invert_y=True)
    assert (event.x, event.y) == (pytest.approx(0.8), pytest.approx(0.1))
    assert parse_osc("/nsynth/y", (0.25,), invert_y=True).event == SetY(0.75)


def test_address_space_documents_every_routed_address():
    table = osc_address_space_markdown()
    addresses = {entry.address for entry in OSC_ADDRESS_SPACE}
    for address in ("/nsynth/xy", "/1/xy1", "/nsynth/x", "/nsynth/y", "/nsynth/note_on",
                    "/nsynth/note_off", "/nsynth/preset", "/nsynth/all_notes_off"):
        assert address in addresses and f"`{address}`" in table
    # every documented address is routed with exactly its documented arguments, and one more
    # argument is always rejected (the table's argument counts are the router's)
    samples = {"f f": (0.5, 0.5), "f": (0.5,), "i i": (60, 100), "i": (60,), "s": ("default",), "": ()}
    for entry in OSC_ADDRESS_SPACE:
        args = samples[entry.arguments]
        assert parse_osc(entry.address, args).event is not None, entry.address
        assert parse_osc(entry.address, args + (1,)).reason == REASON_ARG_COUNT, entry.address
        assert len(entry.arguments.split()) == len(args)


def test_select_preset_carries_only_the_preset_of_its_name():
    from nsynth_live.presets import load_preset

    keys = load_preset("keys")
    assert SelectPreset("keys", preset=keys).preset is keys
    assert SelectPreset("keys") == SelectPreset("keys")  # the name-only form others post still works
    with pytest.raises(ValueError, match="Preset named 'synth'"):
        SelectPreset("synth", preset=keys)
    with pytest.raises(ValueError):
        SelectPreset("keys", preset="keys")
