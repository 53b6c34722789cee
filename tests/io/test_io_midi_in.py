"""MIDI input: the rtmidi callback only parses and posts; no backend means no MIDI, said clearly."""

import logging

import pytest

rtmidi = pytest.importorskip("rtmidi")

from nsynth_live.engine.events import NoteOff, NoteOn  # noqa: E402
from nsynth_live.engine.midi import parse_midi_message  # noqa: E402
from nsynth_live.io import midi_in  # noqa: E402
from nsynth_live.io.midi_in import MidiInput, MidiInputError, make_midi_callback, open_midi_input  # noqa: E402


def test_callback_posts_parsed_events_and_drops_garbage():
    posted = []
    counters = MidiInput(api_name="test", port_description="test", _midi_in=None)
    callback = make_midi_callback(posted.append, parse_midi_message, counters)
    callback(([0x90, 60, 100], 0.0))
    callback(([0xF8], 0.001))  # MIDI clock: not for the engine
    callback(([0x90, 200, 5, 7], 0.0))  # garbage
    callback((None, 0.0))  # not even a message
    callback(([0x80, 60, 0], 0.5))
    assert posted == [NoteOn(60, 100), NoteOff(60)]
    assert counters.messages_received == 5
    assert counters.events_posted == 2


def test_callback_never_raises_even_if_posting_fails():
    def broken_post(event):
        raise RuntimeError("engine queue gone")

    make_midi_callback(broken_post, parse_midi_message)(([0x90, 60, 100], 0.0))


class _NoBackend:
    def __init__(self, api, name=""):
        raise rtmidi.SystemError(f"no sequencer for API {api}")


def test_no_backend_runs_without_midi_and_says_why(monkeypatch, caplog):
    monkeypatch.setattr(rtmidi, "MidiIn", _NoBackend)
    with caplog.at_level(logging.WARNING, logger="nsynth_live.io.midi_in"):
        assert open_midi_input(lambda e: None) is None
    assert "no MIDI input" in caplog.text and "ALSA" in caplog.text


def test_named_port_that_does_not_exist_lists_ports(monkeypatch):
    class FakeMidiIn:
        def __init__(self, api, name=""):
            self.api = api

        def get_ports(self):
            return ["Midi Through:Midi Through Port-0 14:0", "Keystation 49:Keystation MIDI 1 20:0"]

        def delete(self):
            pass

    monkeypatch.setattr(rtmidi, "MidiIn", FakeMidiIn)
    with pytest.raises(MidiInputError) as info:
        open_midi_input(lambda e: None, port_name="Launchkey")
    message = str(info.value)
    assert "'Launchkey'" in message and "Keystation 49" in message and "--midi-port" in message


def test_named_port_matches_by_substring(monkeypatch):
    opened = {}

    class FakeMidiIn:
        def __init__(self, api, name=""):
            opened["client"] = name

        def get_ports(self):
            return ["Midi Through Port-0", "Keystation 49 MIDI 1"]

        def open_port(self, index, name=""):
            opened["index"] = index

        def set_callback(self, callback):
            opened["callback"] = callback

        def cancel_callback(self):
            pass

        def close_port(self):
            pass

        def delete(self):
            pass

    monkeypatch.setattr(rtmidi, "MidiIn", FakeMidiIn)
    posted = []
    handle = open_midi_input(posted.append, port_name="keystation")
    assert opened["index"] == 1 and handle.api_name in ("ALSA", "JACK")
    opened["callback"](([0x90, 64, 90], 0.0))
    assert posted == [NoteOn(64, 90)]
    handle.close()
    handle.close()


def test_backend_order_is_alsa_then_jack():
    names = [name for name, _ in midi_in._backends(rtmidi)]
    assert names == [n for n in ("ALSA", "JACK") if n in names]
