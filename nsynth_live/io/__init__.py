"""Devices and sockets: audio output (sounddevice), MIDI input (python-rtmidi), OSC (python-osc).

The only package that opens audio devices, MIDI ports and network sockets. Submodules are imported
on use (``nsynth_live.io.audio``, ``.midi_in``, ``.osc_server``, ``.recorder``, ``.player``) so
that importing the package needs neither PortAudio nor rtmidi.
"""
