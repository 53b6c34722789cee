"""MIDI input through python-rtmidi: a virtual input port, or a connection to a named port.

Backends are tried in order ALSA, then JACK; when neither works (no ALSA sequencer in the kernel and
no JACK server running) the instrument runs without MIDI and says why. The rtmidi callback runs on
RtMidi's own thread: it only parses the bytes into a typed event
(:func:`nsynth_live.engine.midi.parse_midi_message`) and posts it to the engine; garbage bytes are
dropped by the parser.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

logger = logging.getLogger(__name__)

DEFAULT_MIDI_PORT_NAME = "nsynth-live"  # name of the virtual input port (and of the MIDI client)


class MidiInputError(RuntimeError):
    """A named MIDI port was asked for and could not be opened (the message lists the ports)."""


@dataclass
class MidiInput:
    """An open MIDI input.

    Attributes
    ----------
    api_name : str
        ``"ALSA"`` or ``"JACK"``.
    port_description : str
        The virtual port's name, or the name of the port connected to.
    messages_received : int
        Messages delivered by RtMidi (parsed or not).
    events_posted : int
        Messages that became engine events.
    """

    api_name: str
    port_description: str
    _midi_in: Any
    messages_received: int = 0
    events_posted: int = 0

    def close(self) -> None:
        """Cancel the callback and close the port (idempotent)."""
        if self._midi_in is None:
            return
        try:
            self._midi_in.cancel_callback()
            self._midi_in.close_port()
            self._midi_in.delete()
        finally:
            self._midi_in = None


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence what C libraries print on file descriptor 2 (ALSA's and libjack's connection errors).

    Probing a backend that is not there makes alsa-lib and libjack print several lines each; the
    warning :func:`open_midi_input` logs says the same in one line.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreter): leave it alone
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _backends(rtmidi) -> list[tuple[str, int]]:
    """(name, rtmidi API constant) pairs compiled into this rtmidi, in the order ALSA, JACK."""
    compiled = set(rtmidi.get_compiled_api())
    order = [("ALSA", rtmidi.API_LINUX_ALSA), ("JACK", rtmidi.API_UNIX_JACK)]
    return [(name, api) for name, api in order if api in compiled]


def make_midi_callback(
    post: Callable[[Any], None],
    parse: Callable[[Sequence[int]], Any],
    counters: MidiInput | None = None,
) -> Callable[[tuple[list[int], float], Any], None]:
    """Build the rtmidi callback: parse the bytes, post the event, never raise.

    Parameters
    ----------
    post : callable
        ``engine.post`` (thread-safe).
    parse : callable
        ``parse_midi_message(data) -> Event | None``.
    counters : MidiInput, optional
        Receives the message/event counts.

    Returns
    -------
    callable
        ``callback((message_bytes, delta_seconds), data)`` as python-rtmidi calls it.
    """

    def callback(message_and_delta, _data=None):
        try:
            message = message_and_delta[0]
            if counters is not None:
                counters.messages_received += 1
            event = parse(message)
            if event is not None:
                post(event)
                if counters is not None:
                    counters.events_posted += 1
        except Exception:  # noqa: BLE001 - an exception here would only reach RtMidi's thread
            pass

    return callback


def open_midi_input(
    post: Callable[[Any], None],
    *,
    port_name: str | None = None,
    client_name: str = DEFAULT_MIDI_PORT_NAME,
    virtual_port_name: str = DEFAULT_MIDI_PORT_NAME,
) -> MidiInput | None:
    """Open MIDI input and route it to ``post``.

    Parameters
    ----------
    post : callable
        Receives each parsed event (``Engine.post``).
    port_name : str, optional
        Connect to the first existing input port whose name contains this (case-insensitive). If
        None, open a virtual input port named ``virtual_port_name`` that other programs connect to.
    client_name : str
        MIDI client name (JACK shows ports as ``<client_name>:<port>``).
    virtual_port_name : str
        Name of the virtual port.

    Returns
    -------
    MidiInput or None
        None when no MIDI backend works here (a warning says why; the instrument plays on without
        MIDI input).

    Raises
    ------
    MidiInputError
        If ``port_name`` is given and no backend has a port matching it (the message lists the ports).
    ImportError
        If python-rtmidi is not installed.
    """
    try:
        import rtmidi
    except ImportError as error:
        raise ImportError("python-rtmidi is missing: pip install python-rtmidi") from error
    from nsynth_live.engine.midi import parse_midi_message

    # Never let libjack start a JACK server on its own while we probe for one.
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    failures = []
    seen_ports: list[str] = []
    for api_name, api in _backends(rtmidi):
        try:
            with _quiet_native_stderr():
                midi_in = rtmidi.MidiIn(api, name=client_name)
        except (rtmidi.RtMidiError, RuntimeError) as error:  # no ALSA sequencer / no JACK server
            failures.append(f"{api_name}: {error}")
            continue
        try:
            if port_name is None:
                midi_in.open_virtual_port(virtual_port_name)
                description = f"virtual port {client_name}:{virtual_port_name}"
            else:
                ports = midi_in.get_ports()
                seen_ports.extend(f"{p} ({api_name})" for p in ports)
                matches = [i for i, p in enumerate(ports) if port_name.lower() in p.lower()]
                if not matches:
                    midi_in.delete()
                    failures.append(f"{api_name}: no port matches {port_name!r}")
                    continue
                midi_in.open_port(matches[0], name=f"{virtual_port_name}-in")
                description = f"port {ports[matches[0]]}"
        except (rtmidi.RtMidiError, RuntimeError) as error:
            midi_in.delete()
            failures.append(f"{api_name}: {error}")
            continue
        handle = MidiInput(api_name=api_name, port_description=description, _midi_in=midi_in)
        midi_in.set_callback(make_midi_callback(post, parse_midi_message, handle))
        return handle

    if port_name is not None:
        listing = "\n".join(f"  {p}" for p in seen_ports) or "  (no MIDI input ports found)"
        raise MidiInputError(
            f"no MIDI input port matches {port_name!r}. Ports:\n{listing}\n"
            f"Tried: {'; '.join(failures) or 'no rtmidi backend compiled in'}.\n"
            "Fix: pass part of one of these names to --midi-port, or leave it out to get a virtual port "
            f"named {virtual_port_name!r} that you connect your keyboard to"
        )
    logger.warning(
        "no MIDI input: neither ALSA nor JACK MIDI is available (%s). The instrument plays on without MIDI; "
        "OSC and --play still work. Fix: load the ALSA sequencer (modprobe snd-seq) or start a JACK server.",
        "; ".join(failures) or "no rtmidi backend compiled in",
    )
    return None
