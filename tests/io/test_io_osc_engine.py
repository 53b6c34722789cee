"""The OSC server feeding the real Engine: XY floods and preset changes cost the engine no parsing.

Needs two lines in ``Engine`` (issue 15 item 4): ``_drain_events`` expands an ``EventBatch`` in
place, and ``_apply`` passes ``event.preset or event.name`` to ``_select_preset``. Until they are
applied this test is an expected failure (strict: it fails loudly once they are, so remove the mark).
"""

import tomllib

import pytest

from nsynth_live.engine import Engine
from nsynth_live.io.osc_server import OscServer
from tests.engine.additive_synth import AdditiveTestSynth


def test_engine_applies_a_flood_as_one_batch_without_parsing_toml(monkeypatch):
    engine = Engine(AdditiveTestSynth(), "default")
    server = OscServer(engine.post, clock=lambda: 0.0)
    for i in range(2000):
        server.handle_message("/nsynth/xy", [i / 2000, 0.25])
    for name in ("synth", "no_such_preset", "keys") * 100:
        server.handle_message("/nsynth/preset", [name])
    server.handle_message("/nsynth/note_on", [60, 100])
    assert len(engine._events) == 1  # one batch for everything above

    def no_parsing(*args, **kwargs):
        raise AssertionError("the engine parsed a TOML file")

    monkeypatch.setattr(tomllib, "load", no_parsing)
    engine.render_hop()
    assert engine.preset.name == "keys" and engine.xy == (1999 / 2000, 0.25)
    assert engine.active_voice_count == 1 and len(engine._events) == 0
