"""Audio output devices through PortAudio (python-sounddevice).

Devices are chosen by NAME, never by index: indices change with the audio servers that run
(a JACK server started after PortAudio was initialised, a USB interface plugged in). A name is a
case-insensitive substring of ``"<device name> (<host API name>)"``, so ``"JACK"`` picks the first
output device of the host API "JACK Audio Connection Kit" and ``"USB"`` a USB interface.

This module and its siblings in ``nsynth_live.io`` are the only places that open devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


class AudioDeviceError(RuntimeError):
    """No usable audio output: PortAudio missing, no output device, or no device matching a name."""


@dataclass(frozen=True)
class OutputDevice:
    """One PortAudio output device.

    Attributes
    ----------
    name : str
        Device name as PortAudio reports it (e.g. ``"system"`` for JACK).
    host_api_name : str
        Name of its host API (e.g. ``"JACK Audio Connection Kit"``, ``"ALSA"``).
    max_output_channels : int
        Output channels the device offers.
    default_sample_rate : float
        Hz, the device's default rate.
    is_default : bool
        True for PortAudio's default output device.
    """

    name: str
    host_api_name: str
    max_output_channels: int
    default_sample_rate: float
    is_default: bool = False

    @property
    def label(self) -> str:
        """``"<name> (<host API>)"``: the string a ``--audio-device`` name is matched against."""
        return f"{self.name} ({self.host_api_name})"


def _import_sounddevice():
    """Import sounddevice lazily; PortAudio is a system library the wheel does not bundle on Linux."""
    try:
        import sounddevice
    except OSError as error:  # raised when libportaudio is missing
        raise AudioDeviceError(
            f"cannot load PortAudio ({error}); install it (Debian/Ubuntu: sudo apt-get install libportaudio2) "
            "or render without a device: python run_live.py --offline --play FILE.mid --record OUT.wav"
        ) from error
    except ImportError as error:
        raise AudioDeviceError(
            "the sounddevice package is missing; install it with pip install sounddevice"
        ) from error
    return sounddevice


_jack_client_name_buffer = None  # keeps the name PortAudio points to alive


def set_jack_client_name(name: str) -> bool:
    """Name the JACK client PortAudio creates (its ports become ``<name>:out_0``, ``<name>:out_1``).

    Must run before any stream is opened: PortAudio reads the name when it initialises, so this
    re-initialises PortAudio (sounddevice has no public call for either step; ``PaJack_SetClientName``
    is PortAudio's JACK-specific API, ``pa_jack.h``).

    Returns
    -------
    bool
        False if this PortAudio build has no JACK support (nothing changed).

    Raises
    ------
    AudioDeviceError
        If PortAudio cannot be loaded.
    """
    import ctypes

    sd = _import_sounddevice()
    try:
        set_name = ctypes.CDLL(sd._libname).PaJack_SetClientName
    except (AttributeError, OSError):
        return False
    global _jack_client_name_buffer
    # PortAudio keeps the pointer, not a copy: the buffer must outlive every later Pa_Initialize.
    _jack_client_name_buffer = ctypes.create_string_buffer(name.encode())
    sd._terminate()
    try:
        set_name(_jack_client_name_buffer)
    finally:
        sd._initialize()
    return True


def release_portaudio() -> None:
    """Terminate PortAudio in this process (its JACK host API holds a JACK client from the moment
    it initialises): before another process opens the device under the same client name."""
    try:
        sd = _import_sounddevice()
    except AudioDeviceError:
        return
    sd._terminate()


def list_output_devices() -> list[OutputDevice]:
    """All PortAudio devices with at least one output channel, in PortAudio's order.

    Returns
    -------
    list of OutputDevice
        Possibly empty (no sound card and no audio server).

    Raises
    ------
    AudioDeviceError
        If PortAudio cannot be loaded.
    """
    sd = _import_sounddevice()
    host_apis = sd.query_hostapis()
    try:
        default_index = sd.default.device[1]
    except Exception:  # noqa: BLE001 - sounddevice raises PortAudioError when there is no default
        default_index = -1
    devices = []
    for index, info in enumerate(sd.query_devices()):
        if info["max_output_channels"] < 1:
            continue
        devices.append(
            OutputDevice(
                name=str(info["name"]),
                host_api_name=str(host_apis[info["hostapi"]]["name"]),
                max_output_channels=int(info["max_output_channels"]),
                default_sample_rate=float(info["default_samplerate"]),
                is_default=index == default_index,
            )
        )
    return devices


def format_device_list(devices: list[OutputDevice]) -> str:
    """Human-readable listing for ``--list-devices`` and error messages."""
    if not devices:
        return "  (no audio output devices: no sound card and no audio server such as JACK is running)"
    lines = []
    for device in devices:
        marker = "*" if device.is_default else " "
        lines.append(
            f" {marker} {device.label}: {device.max_output_channels} out, {device.default_sample_rate:g} Hz"
        )
    return "\n".join(lines)


def select_output_device(name: str | None, devices: list[OutputDevice]) -> OutputDevice:
    """Pick an output device by name (pure: tested without PortAudio).

    Parameters
    ----------
    name : str or None
        Case-insensitive substring of ``"<device name> (<host API name>)"``; None picks the default
        output device, or the first output device if PortAudio names no default.
    devices : list of OutputDevice
        What :func:`list_output_devices` returned.

    Returns
    -------
    OutputDevice
        The first match in PortAudio's order.

    Raises
    ------
    AudioDeviceError
        If there is no output device at all, or none matches ``name``; the message lists the devices.
    """
    if not devices:
        asked = f" (asked for {name!r})" if name is not None else ""
        raise AudioDeviceError(
            f"no audio output device found{asked}: this machine has no sound card and no audio server is running.\n"
            "Fix: start an audio server (e.g. JACK: jackd -d dummy, or a sound card's driver), or render to a "
            "file instead: python run_live.py --offline --play FILE.mid --record OUT.wav"
        )
    if name is None:
        for device in devices:
            if device.is_default:
                return device
        return devices[0]
    wanted = name.strip().lower()
    if not wanted:
        raise AudioDeviceError("--audio-device got an empty name; give part of a device name (see --list-devices)")
    for device in devices:
        if wanted in device.label.lower():
            return device
    raise AudioDeviceError(
        f"no audio output device matches {name!r} (matched case-insensitively against "
        f"'<device> (<host API>)'). Output devices:\n{format_device_list(devices)}\n"
        "Fix: pass part of one of these names to --audio-device, or run python run_live.py --list-devices"
    )


def open_output_stream(
    device: OutputDevice,
    *,
    sample_rate: int,
    block_size: int,
    channels: int,
    callback: Callable[[Any, int, Any, Any], None],
):
    """Open (not start) a float32 PortAudio output stream on ``device``.

    Parameters
    ----------
    device : OutputDevice
        From :func:`select_output_device`.
    sample_rate : int
        Hz.
    block_size : int
        Frames per callback (the stream is opened with exactly this block size).
    channels : int
        Output channels (1 or 2); must not exceed ``device.max_output_channels``.
    callback : callable
        sounddevice callback ``(outdata: (frames, channels) float32, frames, time_info, status)``.

    Returns
    -------
    sounddevice.OutputStream
        Call ``start()`` / ``stop()`` / ``close()`` on it.

    Raises
    ------
    AudioDeviceError
        If the device disappeared or refuses the settings (message gives the settings and the fix).
    """
    if channels > device.max_output_channels:
        raise AudioDeviceError(
            f"{device.label} has {device.max_output_channels} output channels, the instrument needs {channels}"
        )
    sd = _import_sounddevice()
    index = None
    host_apis = sd.query_hostapis()
    for i, info in enumerate(sd.query_devices()):
        if (
            info["max_output_channels"] > 0
            and str(info["name"]) == device.name
            and str(host_apis[info["hostapi"]]["name"]) == device.host_api_name
        ):
            index = i
            break
    if index is None:
        raise AudioDeviceError(f"audio device {device.label} disappeared; run --list-devices and try again")
    try:
        return sd.OutputStream(
            device=index,
            samplerate=sample_rate,
            blocksize=block_size,
            channels=channels,
            dtype="float32",
            callback=callback,
            latency="low",
        )
    except sd.PortAudioError as error:
        raise AudioDeviceError(
            f"cannot open {device.label} at {sample_rate} Hz, block {block_size}, {channels} channels: {error}. "
            "Fix: try --sample-rate with the device's rate (a JACK server imposes its own) or another --block-size"
        ) from error
