"""Live engine: voices, allocator, morphing, block processing (no device code here).

API summary (a contract with ``nsynth_live.io`` and ``run_live.py``)
--------------------------------------------------------------------
Events (:mod:`nsynth_live.engine.events`), frozen dataclasses::

    NoteOn(pitch_midi, velocity, channel=0)   NoteOff(pitch_midi)   ControlChange(controller, value, channel=0)
    PitchBend(value, channel=0)    ChannelPressure(value, channel=0)
    ProgramChange(program)         SetXY(x, y)  SetX(x)  SetY(y)   SelectPreset(name)
    AllNotesOff()                  AllSoundOff()         # + MIDI constants NOTE_ON = 0x90, ...

Parsers (pure, never raise; None = ignore)::

    parse_midi_message(data) -> Event | None        # raw MIDI bytes as python-rtmidi delivers
    route_osc(address, args, *, swap_xy=False, invert_x=False, invert_y=False) -> Event | None
    OSC_ADDRESS_SPACE, osc_address_space_markdown()  # documented OSC addresses

Engine (one thread renders; any thread posts)::

    engine = Engine(synth, preset_or_name, output_sample_rate=48000, max_voices=16, channels=2,
                    config=EngineConfig(...))
    engine.post(event)                       # thread-safe, never blocks
    block = engine.render_hop()              # (frames, channels) float32; 768 frames at 48 kHz
    print(engine.latency_report(block_size, prefill_hops=2))

Real time (the sounddevice callback only copies from a preallocated ring)::

    runner = RealtimeRunner(engine, block_size=256, prefill_hops=2)
    runner.start()                           # inference thread; returns once the ring is primed
    stream = sd.OutputStream(samplerate=engine.output_sample_rate, blocksize=256,
                             channels=engine.channels, dtype="float32",
                             callback=runner.audio_callback)
    ...; runner.stop(); runner.xrun_count, runner.underrun_count

Offline (same ``render_hop``, driven by a loop): ``nsynth_live.render.offline``.
"""

from nsynth_live.engine.engine import Engine, EngineConfig, LatencyReport, SustainLoop
from nsynth_live.engine.events import (
    AllNotesOff,
    AllSoundOff,
    ChannelPressure,
    ControlChange,
    Event,
    NoteOff,
    NoteOn,
    PitchBend,
    ProgramChange,
    SelectPreset,
    SetX,
    SetXY,
    SetY,
)
from nsynth_live.engine.midi import parse_midi_message
from nsynth_live.engine.osc import OSC_ADDRESS_SPACE, osc_address_space_markdown, route_osc
from nsynth_live.engine.realtime import RealtimeRunner

__all__ = [
    "AllNotesOff", "AllSoundOff", "ChannelPressure", "ControlChange", "Engine", "EngineConfig", "Event",
    "LatencyReport", "NoteOff", "NoteOn", "OSC_ADDRESS_SPACE", "PitchBend", "ProgramChange", "RealtimeRunner",
    "SelectPreset", "SetX", "SetXY", "SetY", "SustainLoop", "osc_address_space_markdown",
    "parse_midi_message", "route_osc",
]
