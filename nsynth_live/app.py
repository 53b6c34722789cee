"""The live instrument's command line (``run_live.py`` is a thin wrapper over :func:`main`).

Live mode: load and warm the ONNX model, then open the audio stream (a RealtimeRunner feeding a
sounddevice callback), MIDI input and the OSC server; optionally play a MIDI file in real time and
record what was played. Offline mode (``--offline``, or live mode with ``--play`` on a machine
without an audio device) renders the same engine code faster than real time to a WAV file.

Exit codes: 0 success, 1 runtime failure (device, model), 2 bad input (arguments, files).
At exit the instrument prints ``nsynth-live stats: {json}`` (xruns, underruns, counts) and writes
the same object to ``--stats-json PATH`` if asked.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import math
import os
import resource
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nsynth_live.constants import DEFAULT_MODEL_FILE

logger = logging.getLogger("nsynth_live")
_IMPORTED_AT = time.perf_counter()  # s; run_live.py imports this module first: start-up is counted from here

STATS_FORMAT_VERSION = 1  # of the --stats-json object
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / DEFAULT_MODEL_FILE  # in the repository
DEFAULT_PRESET = "default"
DEFAULT_SAMPLE_RATE = 48_000  # Hz, when neither --sample-rate nor the device says otherwise
SUPPORTED_DEVICE_RATES = (44_100, 48_000, 88_200, 96_000)  # Hz a device default may impose
DEFAULT_BLOCK_SIZE = 256  # frames per audio callback (5.3 ms at 48 kHz)
DEFAULT_OFFLINE_DIR = Path("out")  # where --play renders when there is no audio device
TAIL_SECONDS = 2.0  # s rendered/played after a MIDI file's last event (release tails)
JACK_CLIENT_NAME = "nsynth-live-audio"  # JACK client of the audio stream: ports nsynth-live-audio:out_0/1
EXIT_OK, EXIT_RUNTIME, EXIT_BAD_INPUT = 0, 1, 2


class AppError(Exception):
    """A failure reported to the user as one message, without a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ---------------------------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------------------------
def _unit_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"must be a number in 0..1, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a UDP port in 1..65535, got {text}")
    return value


def _osc_reply(text: str) -> tuple[str, int]:
    from nsynth_live.io.osc_feedback import OscReplyError, parse_reply_target

    try:
        return parse_reply_target(text)
    except OscReplyError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _rt_priority(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 89:
        raise argparse.ArgumentTypeError(f"must be a SCHED_FIFO priority in 1..89, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``run_live.py`` argument parser."""
    parser = argparse.ArgumentParser(
        description="nsynth-live: play the SING neural instrument live from MIDI and OSC,\n"
        "or render a MIDI file with it.\n\n"
        "It writes --record (a WAV) and --stats-json (JSON) when asked; --offline --play without\n"
        "--record, or --play with no audio device, writes out/<name>.wav (out/<name>-2.wav... when it\n"
        "exists). An existing file is not overwritten without --force; a killed run's temporary\n"
        "file is removed by the next run. Nothing to resume: a render is redone from the start.",
        epilog="Examples:\n"
        "  python run_live.py --play examples/bach_bwv66_6.mid\n"
        "  python run_live.py --audio-device JACK --midi-port 'Keystation'\n"
        "  python run_live.py --offline --play in.mid --record out.wav\n"
        "OSC address space: docs/osc.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sound = parser.add_argument_group("sound")
    sound.add_argument("--preset", default=DEFAULT_PRESET, help="preset name (default: %(default)s)")
    sound.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH,
                       help="streaming SING ONNX model (default: models/sing_v3.onnx in the repository: model v3; models/sing_default.onnx is SING v2)")
    sound.add_argument("--bank", type=Path, metavar="DIR",
                       help="play a bank rendered by export/render_bank.py instead of the model (XY crossfades "
                            "its grid cells; the preset gives XY, release and gain)")
    sound.add_argument("--xy", nargs=2, type=_unit_float, metavar=("X", "Y"), help="initial XY position, 0..1 each")
    sound.add_argument("--max-voices", type=_positive_int, default=16, help="polyphony (default: %(default)s)")
    audio = parser.add_argument_group("audio output")
    audio.add_argument("--audio-device", metavar="NAME", help="part of an output device or host API name, e.g. JACK")
    audio.add_argument("--list-devices", action="store_true", help="list audio output devices and exit")
    audio.add_argument("--sample-rate", type=_positive_int, metavar="HZ",
                       help=f"output rate (default: the device's, else {DEFAULT_SAMPLE_RATE})")
    audio.add_argument("--channels", type=int, choices=(1, 2), default=2,
                       help="output channels: 2 for the stereo mix (voices spread by key and the preset's "
                       "width), 1 for the centred mono mix (default: %(default)s); also --record's and --offline's")
    audio.add_argument("--block-size", type=_positive_int, default=DEFAULT_BLOCK_SIZE, metavar="N",
                       help="frames per audio callback (default: %(default)s)")
    audio.add_argument("--realtime-priority", type=_rt_priority, metavar="P",
                       help="run the instrument's threads (model inference, MIDI, OSC) with real-time "
                       "scheduling (SCHED_FIFO) at priority P, 1..89; keep it below the audio server's "
                       "client threads (JACK's: 5 with jackd's default -P 10), e.g. 1; needs an rtprio "
                       "limit (Linux audio group) or root")
    audio.add_argument("--audio-in-process", action="store_true",
                       help="run the audio callback in the instrument's own process instead of a separate "
                       "audio process (it then shares the GIL with the model thread: more xruns; for "
                       "comparison, see docs/running.md)")
    control = parser.add_argument_group("control")
    control.add_argument("--midi-port", metavar="NAME",
                         help="connect to this MIDI input port (default: open a virtual port 'nsynth-live')")
    control.add_argument("--no-midi", action="store_true", help="do not open MIDI input")
    control.add_argument("--osc-port", type=_port, default=8000, help="UDP port for OSC (default: %(default)s)")
    control.add_argument("--osc-host", default="127.0.0.1",
                         help="interface for OSC (default: %(default)s; 0.0.0.0 exposes it to the network)")
    control.add_argument("--no-osc", action="store_true", help="do not start the OSC server")
    control.add_argument("--osc-swap-xy", action="store_true", help="swap the x and y of incoming XY messages")
    control.add_argument("--osc-invert-x", action="store_true", help="x -> 1 - x for incoming XY messages")
    control.add_argument("--osc-invert-y", action="store_true", help="y -> 1 - y for incoming XY messages")
    control.add_argument("--osc-reply", type=_osc_reply, metavar="HOST:PORT",
                         help="send the instrument's state (XY, preset, voices, peak) to this OSC address "
                         "(default: to the last controller that sent a message, at its source port)")
    files = parser.add_argument_group("files")
    files.add_argument("--play", type=Path, metavar="FILE.mid", help="play a MIDI file through the instrument")
    files.add_argument("--record", type=Path, metavar="OUT.wav", help="write what was played to a WAV file")
    files.add_argument("--automation", type=Path, metavar="FILE.csv",
                       help="move XY along 'time,x,y' rows while --play plays (linear between rows; "
                       "format in docs/midi.md)")
    files.add_argument("--ignore-program-changes", action="store_true",
                       help="do not let --play's program changes switch presets (a General MIDI file's "
                       "programs name GM instruments, not presets)")
    files.add_argument("--offline", action="store_true",
                       help="render --play to --record faster than real time, no audio device")
    files.add_argument("--force", action="store_true", help="overwrite --record / --stats-json if they exist")
    files.add_argument("--duration", type=_positive_float, metavar="SECONDS",
                       help="stop after this long (default: at the end of --play, else at Ctrl-C)")
    files.add_argument("--verbose", action="store_true",
                       help="also print notices that are not problems (logged at INFO level)")
    files.add_argument("--stats-json", type=Path, metavar="PATH", help="write run statistics (xruns...) as JSON")
    return parser


# ---------------------------------------------------------------------------------------------
# loading inputs (each failure becomes one clear message)
# ---------------------------------------------------------------------------------------------
def load_preset_or_explain(name: str):
    """Load a preset; an unknown or invalid one gives a message listing the valid names."""
    from nsynth_live.presets import PresetError, list_presets, load_preset

    try:
        return load_preset(name)
    except PresetError as error:
        message = str(error)
        if "valid presets" not in message.lower():
            message += f". Valid presets: {', '.join(list_presets()) or '(none found)'}"
        raise AppError(message) from error


def load_midi_events_or_explain(path: Path, *, ignore_program_changes: bool = False) -> list:
    """Timed events of a MIDI file, or a clear error. Its program changes select presets as they
    do live (program N: the N-th preset by name) unless ``ignore_program_changes``."""
    from nsynth_live.render.offline import MidiFileError, midi_file_events

    if not path.is_file():
        raise AppError(f"MIDI file {path} not found. Fix: give the path of a .mid file to --play")
    try:
        events = list(midi_file_events(path))
    except MidiFileError as error:
        raise AppError(str(error)) from error
    from nsynth_live.engine.events import ProgramChange

    programs = sum(isinstance(event, ProgramChange) for _, event in events)
    if ignore_program_changes:
        events = [(time_seconds, event) for time_seconds, event in events if not isinstance(event, ProgramChange)]
    elif programs:
        logging.getLogger("nsynth_live").info(
            "%s has %d program change(s): they select presets by number, as live "
            "(--ignore-program-changes keeps --preset)", path, programs)
    if not events:
        raise AppError(f"MIDI file {path} has no notes to play")
    return events


def load_model_or_explain(path: Path):
    """Load the streaming ONNX synth; missing or corrupt files give a message naming the file.

    The loader refuses damaged weights (NaN / inf / absurd values, a ``weights_sha256`` mismatch, a
    test note that is NaN or far beyond full scale: ``nsynth_live.runtime.sing_onnx``). For the
    default path the whole file must also match ``DEFAULT_MODEL_SHA256``, the committed model's
    hash, unless it carries its own ``weights_sha256`` (a re-export by ``export/train_sing.py``).
    """
    if not path.exists():
        raise AppError(
            f"model file {path} not found. Fix: pass --model PATH to an exported SING .onnx file "
            f"(the default, {DEFAULT_MODEL_PATH}, ships with the repository)",
            EXIT_BAD_INPUT,
        )
    if not path.is_file():
        raise AppError(f"model path {path} is not a file. Fix: pass --model PATH to a .onnx file")
    try:
        from nsynth_live.runtime.sing_onnx import DEFAULT_MODEL_SHA256, ModelFileError, ModelIntegrityError, load_synth
    except ImportError as error:
        raise AppError(f"cannot load model {path}: {error}", EXIT_RUNTIME) from error
    is_default = path.resolve() == DEFAULT_MODEL_PATH.resolve()
    try:
        return load_synth(path, expected_file_sha256=DEFAULT_MODEL_SHA256 if is_default else None)
    except ModelFileError as error:
        if is_default:
            raise AppError(
                f"{str(error).rstrip('.')}. This is the default model, committed with the repository: restore it "
                f"with 'git checkout -- models/{DEFAULT_MODEL_PATH.name}' (in {DEFAULT_MODEL_PATH.parent.parent}), or pass "
                "--model PATH to another model") from error
        if isinstance(error, ModelIntegrityError):  # its message already says what to do
            raise AppError(str(error)) from error
        raise AppError(f"{error}. Fix: pass --model PATH to a streaming SING .onnx file "
                       "(export/train_sing.py writes one)") from error
    except ImportError as error:
        raise AppError(f"cannot load model {path}: {error}", EXIT_RUNTIME) from error
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise AppError(
            f"model file {path} cannot be loaded: {type(error).__name__}: {error}. "
            "Fix: re-export it, or pass --model PATH to a valid SING streaming .onnx file"
        ) from error


def load_bank_or_explain(path: Path):
    """Open a bank folder as a streaming synth; a missing, corrupt or foreign bank gives one message."""
    from nsynth_live.data.bank_index import BankFormatError
    from nsynth_live.runtime.bank_player import load_bank_player

    if not path.is_dir():
        raise AppError(f"bank folder {path} not found. Fix: pass --bank DIR to a folder written by "
                       "export/render_bank.py")
    try:
        player = load_bank_player(path)
    except BankFormatError as error:
        raise AppError(f"{error}") from error
    print(f"nsynth-live: bank {player.index.name!r} from {path}: {player.index.grid_size}x{player.index.grid_size} "
          f"cells, {len(player.index.pitches)} roots, {len(player.index.velocities)} velocity layer(s), "
          f"{player.memory_bytes / 2**20:.0f} MiB", flush=True)
    return player


def load_synth_or_explain(args: argparse.Namespace):
    """The bank player with ``--bank``, else the model of ``--model``."""
    return load_bank_or_explain(args.bank) if args.bank is not None else load_model_or_explain(args.model)


def bank_sustain_loop(spec):
    """The engine's sustain loop for a bank: never reached (the bank player loops its samples itself).

    A crossfade loop at the very end of the player's 10-minute time table.
    """
    from nsynth_live.engine.engine import SustainLoop

    end = spec.time_steps - 2
    return SustainLoop(loop_start_index=end - 2, loop_end_index=end - 1, crossfade_hops=1)


def warm_up(synth, *, max_voices: int) -> float:
    """Run the model once per batch size the engine will use before any stream is opened.

    ONNX Runtime plans memory on a shape's first run and session creation holds the GIL; doing it
    here keeps both out of the first audio blocks. Returns the seconds it took.
    """
    import numpy as np

    started = time.perf_counter()
    spec = synth.spec
    embedding = synth.instrument_embedding(spec.instrument_names[0])
    for voices in sorted({1, 2, max_voices}):
        state = synth.new_state(voices)
        synth.step(
            np.repeat(embedding[None, :], voices, axis=0).astype(np.float32),
            np.full(voices, (spec.pitch_min_midi + spec.pitch_max_midi) // 2, dtype=np.int64),
            np.full(voices, 100.0, dtype=np.float32),
            np.zeros(voices, dtype=np.int64),
            state,
        )
    return time.perf_counter() - started


def _check_writable(path: Path | None, *, force: bool, what: str) -> None:
    if path is None:
        return
    if path.exists() and not force:
        raise AppError(f"{what} {path} exists; pass --force to overwrite it or choose another path")
    if path.exists() and path.is_dir():
        raise AppError(f"{what} {path} is a folder; give a file path")
    from nsynth_live.fileio import remove_stale_temporaries

    remove_stale_temporaries(path.parent, names=[path.name])  # what a killed run left of this file


def unused_output_path(folder: Path, stem: str) -> Path:
    """``folder/stem.wav``, or ``stem-2.wav``, ``stem-3.wav``... whichever does not exist yet."""
    from nsynth_live.fileio import temporary_target

    # a name another render is still writing (its temporary is there) counts as used
    pending = set()
    if folder.is_dir():
        pending = {target for target in (temporary_target(p.name) for p in folder.iterdir()) if target}
    candidate = folder / f"{stem}.wav"
    counter = 2
    while candidate.exists() or candidate.name in pending:
        candidate = folder / f"{stem}-{counter}.wav"
        counter += 1
    return candidate


def write_json_atomically(path: Path, payload: dict) -> None:
    """Write JSON through :func:`nsynth_live.fileio.atomic_output` (temp file, then rename)."""
    from nsynth_live.fileio import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode(), overwrite=True)


# ---------------------------------------------------------------------------------------------
# the two modes
# ---------------------------------------------------------------------------------------------
@dataclass
class _Setup:
    args: argparse.Namespace
    preset: Any
    events: list | None
    automation: Any = None  # (rows, 3) time, x, y of --automation

    def timed_events(self, engine) -> list | None:
        """``--play``'s events with ``--automation``'s XY moves on the engine's hop grid."""
        if self.events is None or self.automation is None:
            return self.events
        from nsynth_live.render.automation import automation_events

        # automation first: at equal times its position is set before a note starts
        return automation_events(self.automation, hop_seconds=engine.hop_seconds) + self.events


def _latency_lines(engine, block_size: int, runner=None) -> tuple[str, dict]:
    """Text and a JSON-able dict of the latency report (a LatencyReport): the runner's (with the
    attack cache's note-on term) when given, else ``engine.latency_report(block_size)``."""
    from dataclasses import asdict

    report = engine.latency_report(block_size) if runner is None else runner.latency_report()
    as_dict = asdict(report)
    as_dict["total_ms"] = report.total_ms
    text = str(report)
    return text, as_dict


def _make_engine(setup: _Setup, synth, sample_rate: int):
    from nsynth_live.engine.engine import Engine, EngineConfig
    from nsynth_live.engine.events import SetXY

    from nsynth_live.presets import Preset, PresetError

    config = None
    if setup.args.bank is not None:  # the bank's corners are the pad's own: presets give XY, release, gain
        from nsynth_live.presets import BANK_CORNER_NAMES

        # a bank sample is a pure function of time: the XY ramp alone moves it within 32 ms (it
        # crossfades the cells), with no model state to replay (docs/engine.md, "Morph")
        config = EngineConfig(sustain_loop=bank_sustain_loop(synth.spec), corner_names=BANK_CORNER_NAMES,
                              morph_mode="ramp")
    preset = setup.preset
    if setup.args.xy is not None and isinstance(preset, Preset):
        # the engine starts there (so does the attack cache, rendered before the first hop)
        preset = dataclasses.replace(preset, xy=(float(setup.args.xy[0]), float(setup.args.xy[1])))
    try:
        engine = Engine(synth, preset, output_sample_rate=sample_rate, max_voices=setup.args.max_voices,
                        channels=setup.args.channels, config=config)
    except PresetError as error:
        raise AppError(f"{error}. Fix: choose a preset whose corners this model knows (--preset)") from error
    except ValueError as error:
        raise AppError(f"cannot build the engine: {error}") from error
    if setup.args.xy is not None and not isinstance(setup.preset, Preset):
        engine.post(SetXY(setup.args.xy[0], setup.args.xy[1]))
    return engine


def run_offline(setup: _Setup, out_path: Path, *, reason: str) -> dict:
    """Render ``setup.events`` with the engine faster than real time and write ``out_path``."""
    from nsynth_live.render.offline import render_events_to_wav

    args = setup.args
    sample_rate = args.sample_rate or DEFAULT_SAMPLE_RATE
    synth = load_synth_or_explain(args)
    engine = _make_engine(setup, synth, sample_rate)
    startup_seconds = time.perf_counter() - _IMPORTED_AT
    print(f"nsynth-live: rendering {args.play} offline ({reason}) at {sample_rate} Hz ...", flush=True)
    started = time.perf_counter()
    # streamed to the file hop by hop (constant memory), renamed onto out_path at the end; float WAV
    # like --record (no clipping of peaks above 0 dBFS); --force was checked up front
    _, frames = render_events_to_wav(engine, setup.timed_events(engine), out_path, tail_seconds=TAIL_SECONDS,
                                     progress=sys.stderr.isatty(), force=True, subtype="FLOAT")
    elapsed = time.perf_counter() - started
    duration_seconds = frames / sample_rate
    print(
        f"nsynth-live: wrote {out_path} ({duration_seconds:.1f} s of audio in {elapsed:.1f} s, "
        f"{duration_seconds / max(elapsed, 1e-9):.1f}x real time)",
        flush=True,
    )
    return {
        "mode": "offline",
        "output_path": str(out_path),
        "sample_rate": sample_rate,
        "audio_seconds": duration_seconds,
        "render_seconds": elapsed,
        "xrun_count": 0,
        "underrun_count": 0,
        "nonfinite_hops": int(engine.nonfinite_hops),
        "nonfinite_voices": int(engine.nonfinite_voices),
        "startup_seconds": round(startup_seconds, 3),
    }


class _StopRequest(threading.Event):
    """Set by Ctrl-C / SIGTERM while the instrument plays (``playing``); see :func:`main`."""

    def __init__(self) -> None:
        super().__init__()
        self.playing = False


def run_live(setup: _Setup, device, stop: _StopRequest) -> dict:
    """Play live on ``device`` until ``stop`` is set, the duration passes or the file ends; the
    run's statistics (see :class:`LiveSession`)."""
    session = LiveSession(setup, device)
    try:
        try:
            session.open()
            session.start(stop)
            session.play(stop)
        finally:
            session.close()
        return session.stats()
    finally:
        session.release()


DEFAULT_JACK_CLIENT_NAME = "nsynth-live"  # the audio process's JACK client and its MIDI port


def _jack_native_possible(device) -> bool:
    """Play audio and MIDI on the audio process's own JACK client: the device is a JACK server,
    JACK-Client is installed and there is no ALSA sequencer (where there is one, MIDI stays an
    ALSA port, as before)."""
    import importlib.util

    return ("JACK" in device.host_api_name and importlib.util.find_spec("jack") is not None
            and not os.path.exists("/dev/snd/seq"))


def _jack_period_frames() -> int | None:
    """The JACK server's period (frames), from a short-lived client; None if it cannot say."""
    try:
        import jack

        client = jack.Client("nsynth-live-query", no_start_server=True)
    except Exception:  # noqa: BLE001 - the audio process will report the real error
        return None
    try:
        return int(client.blocksize)
    finally:
        client.close()


class _AudioProcessMidi:
    """The MIDI input the audio process's JACK client reads, as :class:`LiveSession` reports it."""

    api_name = "JACK"

    def __init__(self, audio_process) -> None:
        self._audio = audio_process
        info = audio_process.info or {}
        self.port_description = f"virtual port {info.get('midi_port')}"
        if info.get("connected_from"):
            self.port_description = f"{info.get('midi_port')} <- {info['connected_from']}"
        self.messages_received = 0
        self.events_posted = 0

    def close(self) -> None:
        """Read the counts (before the audio process's memory is freed)."""
        self.messages_received = self._audio.midi_messages
        self.events_posted = self._audio.midi_events


class LiveSession:
    """One live performance: the model and engine, the audio output (its own process by default),
    the MIDI, OSC and file inputs, and the figures of the run.

    ``open`` loads and builds everything (raising :class:`AppError` with the fix for a missing
    device or port), ``start`` primes the ring and starts the sound, ``play`` waits until the end,
    ``close`` stops everything in order (always call it), ``stats`` gives the run's figures and
    ``release`` frees the audio process's shared memory (always call it last).
    """

    def __init__(self, setup: _Setup, device) -> None:
        self.setup = setup
        self.args = args = setup.args
        self.device = device
        sample_rate = args.sample_rate
        if sample_rate is None:
            device_rate = int(round(device.default_sample_rate))
            sample_rate = device_rate if device_rate in SUPPORTED_DEVICE_RATES else DEFAULT_SAMPLE_RATE
        self.sample_rate = sample_rate
        self.block_size = args.block_size
        self.ring_blocks = max(64, int(5.0 * sample_rate / self.block_size))  # --record's ring: 5 s of blocks
        self.engine = self.runner = self.stream = self.audio_process = None
        self.recorder = self.midi = self.osc = self.player = None
        self.osc_feedback = None
        self.callback_errors = 0
        self.started: float | None = None
        self.audio_result: dict = {}
        self.warm_seconds = 0.0
        self.latency_text, self.latency = "", {}
        self._stats: dict[str, Any] = {"mode": "live"}
        self._switch_interval_seconds = sys.getswitchinterval()
        self._frozen = False

    # ------------------------------------------------------------------ open
    def open(self) -> None:
        """Load the model, build the engine, open the audio output and the inputs."""
        from nsynth_live.io.recorder import BlockRecorder

        args = self.args
        synth = load_synth_or_explain(args)
        self.warm_seconds = warm_up(synth, max_voices=args.max_voices)
        self.engine = _make_engine(self.setup, synth, self.sample_rate)
        if args.audio_in_process:
            self._open_stream_here()
        else:
            self._open_audio_process()
        self.latency_text, self.latency = _latency_lines(self.engine, self.block_size, self.runner)
        if args.realtime_priority is not None:
            # Before the instrument's other threads start (recorder, MIDI, OSC, player, inference):
            # they inherit it (the attack-cache renderer lowers its own).
            _request_realtime_priority(args.realtime_priority)
        if args.record is not None and self.stream is not None:  # after the stream opened: no temp file on failure
            # PortAudio calls back with exactly block_size frames when the stream has a fixed
            # blocksize; the ring holds 5 s, far more than the writer thread ever lags.
            self.recorder = BlockRecorder(args.record, sample_rate=self.sample_rate, channels=args.channels,
                                          max_block_frames=self.block_size, ring_blocks=self.ring_blocks)
        self._open_inputs()

    def _open_stream_here(self) -> None:
        from nsynth_live.engine.realtime import RealtimeRunner
        from nsynth_live.io.audio import open_output_stream

        runner = self.runner = RealtimeRunner(self.engine, block_size=self.block_size)

        def callback(outdata, frames, time_info, status):
            runner.audio_callback(outdata, frames, time_info, status)
            if self.recorder is not None:
                try:
                    self.recorder.push(outdata)
                except Exception:  # noqa: BLE001 - never let the callback die
                    self.callback_errors += 1

        self.stream = open_output_stream(self.device, sample_rate=self.sample_rate, block_size=self.block_size,
                                         channels=self.args.channels, callback=callback)

    def _open_audio_process(self) -> None:
        from nsynth_live.engine.realtime import RealtimeRunner
        from nsynth_live.io.audio import release_portaudio
        from nsynth_live.io.audio_process import AudioProcess, AudioProcessError

        args = self.args
        release_portaudio()  # the audio process opens the device: no second JACK client here
        record = None if args.record is None else {"path": str(args.record), "ring_blocks": self.ring_blocks}
        jack_native = None
        if _jack_native_possible(self.device):
            # audio and MIDI on one JACK client of the audio process: note-ons from their own frame
            period = _jack_period_frames()
            if period is not None and period != self.block_size:
                print(f"nsynth-live: the JACK server runs {period}-frame periods: block size {period}", flush=True)
                self.block_size = period
            jack_native = {"client_name": DEFAULT_JACK_CLIENT_NAME,
                           "midi_port": None if args.no_midi else DEFAULT_JACK_CLIENT_NAME,
                           "connect_from": None if args.no_midi else args.midi_port}

        def link_factory(config):
            from nsynth_live.io.audio_process import MidiPortNotFound

            try:
                return AudioProcess(config, device=self.device, sample_rate=self.sample_rate,
                                    block_size=self.block_size, channels=args.channels, jack_client_name=JACK_CLIENT_NAME,
                                    record=record, realtime_priority=args.realtime_priority, jack_native=jack_native)
            except MidiPortNotFound as error:
                listing = "\n".join(f"  {p}" for p in error.args[1]) or "  (no JACK MIDI outputs)"
                raise AppError(f"no MIDI input port matches {args.midi_port!r}. JACK MIDI outputs:\n{listing}\n"
                               "Fix: pass part of one of these names to --midi-port, or leave it out to get a "
                               f"virtual port {DEFAULT_JACK_CLIENT_NAME!r} that you connect your keyboard to") from error
            except AudioProcessError as error:
                raise AppError(f"cannot open {self.device.label}: {error}", EXIT_RUNTIME) from error

        self.runner = RealtimeRunner(self.engine, block_size=self.block_size, link_factory=link_factory)
        self.audio_process = self.runner.link
        if jack_native is not None and jack_native["midi_port"] is not None:
            self.midi = _AudioProcessMidi(self.audio_process)

    def _open_inputs(self) -> None:
        from nsynth_live.io.midi_in import MidiInputError, open_midi_input
        from nsynth_live.io.osc_server import OscServer, OscServerError

        args = self.args
        if not args.no_midi and self.midi is None:
            try:
                self.midi = open_midi_input(self.runner.post, port_name=args.midi_port)
            except MidiInputError as error:
                raise AppError(str(error)) from error
        if not args.no_osc:
            self.osc = OscServer(self.runner.post, host=args.osc_host, port=args.osc_port, swap_xy=args.osc_swap_xy,
                                 invert_x=args.osc_invert_x, invert_y=args.osc_invert_y,
                                 presets_dir=self.engine.config.presets_dir)
            try:
                self.osc.start()
            except OscServerError as error:
                raise AppError(str(error), EXIT_RUNTIME) from error
            from nsynth_live.io.osc_feedback import OscFeedback, OscReplyError, engine_feedback_state

            engine, runner = self.engine, self.runner
            try:
                self.osc_feedback = OscFeedback.for_server(self.osc, lambda: engine_feedback_state(engine, runner),
                                                           reply_to=args.osc_reply)
            except OscReplyError as error:
                raise AppError(str(error)) from error
            self.osc_feedback.start()

    # ------------------------------------------------------------------ start and play
    def start(self, stop: _StopRequest) -> None:
        """Prime the ring (and the attack cache), start the sound, print the ready line."""
        # A callback in this process needs the GIL: hand it over every 1 ms while the stream runs
        # (5 ms by default, a whole JACK period). Objects made so far move out of the collector's
        # reach, so that a collection pass cannot hold the GIL for milliseconds mid-stream.
        sys.setswitchinterval(min(self._switch_interval_seconds, 0.001))
        gc.collect()
        gc.freeze()
        self._frozen = True
        self.runner.start()
        if self.stream is not None:
            self.stream.start()
        else:
            self.audio_process.start_stream()
        self.started = time.monotonic()
        stop.playing = True  # from now on Ctrl-C stops the play loop gracefully (see main)
        midi, osc = self.midi, self.osc
        print(f"nsynth-live: playing on {self.device.label} at {self.sample_rate} Hz, block {self.block_size} "
              f"frames (model warmed in {self.warm_seconds * 1000:.0f} ms; audio callback "
              f"{'in this process' if self.stream is not None else 'in its own process'})", flush=True)
        print(f"nsynth-live: expected latency: {self.latency_text}", flush=True)
        print(f"nsynth-live: MIDI input: {midi.api_name + ' ' + midi.port_description if midi else 'none'}", flush=True)
        if osc is not None:
            host, port = osc.address
            print(f"nsynth-live: OSC on udp://{host}:{port} (address space: docs/osc.md)", flush=True)
            if self.osc_feedback is not None:
                reply = self.osc_feedback.reply_to
                print("nsynth-live: OSC feedback to " + (f"udp://{reply[0]}:{reply[1]}" if reply else
                      "the last controller that sent a message (its source port)"), flush=True)
        ready = {
            "midi_api": midi.api_name if midi else None,
            "midi_port": midi.port_description if midi else None,
            "osc_port": osc.address[1] if osc else None,
            "sample_rate": self.sample_rate,
            "block_size": self.block_size,
            "device": self.device.label,
        }
        print("nsynth-live ready " + json.dumps(ready), flush=True)
        self._stats["startup_seconds"] = round(time.perf_counter() - _IMPORTED_AT, 3)

    def play(self, stop: _StopRequest) -> None:
        """Play ``--play``'s file if any, and wait until ``stop``, ``--duration`` or the file's end."""
        from nsynth_live.io.player import EventPlayer

        args = self.args
        deadline = None if args.duration is None else self.started + args.duration
        if self.setup.events is not None:
            self.player = EventPlayer(self.setup.timed_events(self.engine), self.runner.post)
            self.player.start()
            if deadline is None:
                deadline = self.started + self.player.duration_seconds + TAIL_SECONDS
            print(f"nsynth-live: playing {args.play} ({self.player.duration_seconds:.1f} s); Ctrl-C stops", flush=True)
        elif deadline is None:
            print("nsynth-live: play MIDI or send OSC; Ctrl-C stops", flush=True)
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            # Long waits: every wake-up of this thread takes the GIL.
            stop.wait(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic())))
        self._stats["thread_scheduling"] = _thread_scheduling()  # while every thread still runs

    # ------------------------------------------------------------------ close and figures
    def close(self) -> None:
        """Stop the player, the sound, the model thread and the inputs; finish the recording.

        Every step runs even if one before it failed; the first failure is raised at the end.
        """
        errors: list[BaseException] = []

        def step(action) -> None:
            try:
                action()
            except Exception as error:  # noqa: BLE001 - the next steps must still run
                errors.append(error)

        if self.player is not None:
            step(self.player.stop)
        if self.runner is not None:  # nothing is published to the audio process after this
            step(self.runner.stop_cache_thread)
        if self.stream is not None:
            if self.started is not None:
                step(self.stream.stop)
            step(self.stream.close)
        elif self.audio_process is not None:
            if self.started is not None:
                step(lambda: setattr(self, "audio_result", self.audio_process.stop()))
            else:
                step(self.audio_process.abort)
        if self.runner is not None:
            step(self.runner.stop)
        if self.midi is not None:
            step(self.midi.close)
        if self.osc_feedback is not None:
            step(self.osc_feedback.stop)
        if self.osc is not None:
            step(self.osc.stop)
        sys.setswitchinterval(self._switch_interval_seconds)
        if self._frozen:
            gc.unfreeze()
            self._frozen = False
        if self.recorder is not None:
            if self.started is None:
                step(self.recorder.abort)
            else:
                def finish() -> None:
                    path = self.recorder.close()
                    print(f"nsynth-live: recorded {self.recorder.frames_written / self.sample_rate:.1f} s to {path}",
                          flush=True)
                step(finish)
        elif self.audio_result.get("recorded_path"):
            print(f"nsynth-live: recorded {self.audio_result['frames_written'] / self.sample_rate:.1f} s to "
                  f"{self.audio_result['recorded_path']}", flush=True)
        if errors:
            raise errors[0]

    def release(self) -> None:
        """Free the audio process's shared memory (after :meth:`close` and :meth:`stats`)."""
        if self.audio_process is not None:
            if self.runner is not None:
                self.runner.release_link()
            self.audio_process.close()

    def stats(self) -> dict:
        """The run's figures (``docs/running.md``, "What it prints"), after :meth:`close`."""
        runner, engine, midi, osc = self.runner, self.engine, self.midi, self.osc
        stats = dict(self._stats)
        stats.update(
            {
                "device": self.device.label,
                "sample_rate": self.sample_rate,
                "block_size": self.block_size,
                "played_seconds": time.monotonic() - self.started,
                "xrun_count": int(runner.xrun_count),
                "underrun_count": int(runner.underrun_count),
                "callback_errors": self.callback_errors,
                "latency": self.latency,
                "midi_messages": midi.messages_received if midi else 0,
                "midi_events": midi.events_posted if midi else 0,
                "osc_messages": osc.messages_received if osc else 0,
                "osc_rejected": osc.messages_rejected + osc.packets_malformed if osc else 0,
                "osc": osc.stats() if osc else None,
                "recorded_path": str(self.args.record) if self.args.record is not None else None,
                "recorder_dropped_blocks": (self.recorder.dropped_blocks if self.recorder else
                                            self.audio_result.get("dropped_blocks", 0)),
                "audio_process": None if self.audio_process is None else {
                    "max_rss_mib": round(self.audio_result.get("max_rss_mib", 0.0), 1),
                    "events_dropped": self.audio_process.events_dropped,
                },
                "nonfinite_hops": int(engine.nonfinite_hops),
                "nonfinite_voices": int(engine.nonfinite_voices),
                "attack_cache": {
                    "enabled": runner.use_attack_cache,
                    "cached_notes": runner.cached_notes,
                    "uncached_notes": runner.uncached_notes,
                    "builds": runner.cache_builds,
                    "builds_abandoned": runner.cache_builds_aborted,
                    "last_build_seconds": round(runner.cache_build_seconds, 3),
                    "handoff_hops": runner.handoff_hops,
                    "late_handoffs": int(engine.late_handoffs),
                },
            }
        )
        return stats


def _thread_scheduling() -> dict[str, str]:
    """Scheduling of each Python thread of this process, by thread name (Linux; ``{}`` elsewhere).

    Returns
    -------
    dict of str to str
        ``"SCHED_FIFO 1"`` (policy and real-time priority) or ``"SCHED_OTHER"``; a repeated
        thread name gets its native thread id appended.
    """
    names = {getattr(os, name): name for name in ("SCHED_OTHER", "SCHED_BATCH", "SCHED_IDLE", "SCHED_FIFO", "SCHED_RR")
             if hasattr(os, name)}
    realtime = {getattr(os, name) for name in ("SCHED_FIFO", "SCHED_RR") if hasattr(os, name)}
    found: dict[str, str] = {}
    for thread in threading.enumerate():
        tid = thread.native_id
        if tid is None:
            continue
        try:
            policy = os.sched_getscheduler(tid)
            priority = os.sched_getparam(tid).sched_priority
        except (AttributeError, OSError):  # not Linux, or the thread just ended
            continue
        text = names.get(policy, f"policy {policy}")
        key = thread.name if thread.name not in found else f"{thread.name} ({tid})"
        found[key] = f"{text} {priority}" if policy in realtime else text
    return found


def _request_realtime_priority(priority: int) -> bool:
    """Switch the calling thread to SCHED_FIFO; threads it creates later inherit the policy.

    Called before the recorder, MIDI, OSC, player and inference threads start. The audio
    callback's thread belongs to the audio server's client library (JACK runs it real-time
    itself); no thread that takes the GIL the callback waits for may be preempted by ordinary busy
    processes while it holds it.
    Returns False (with a warning) where the OS refuses.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (AttributeError, OSError) as error:
        logger.warning("cannot use real-time priority %d (%s); running at normal priority. Fix: give your user "
                       "an rtprio limit (e.g. the 'audio' group with limits.d) or leave out --realtime-priority",
                       priority, error)
        return False
    print(f"nsynth-live: real-time scheduling (SCHED_FIFO, priority {priority}) for the instrument's threads",
          flush=True)
    return True


def _setup_logging(verbose: bool = False) -> None:
    """Warnings and errors on stderr; notices (INFO) too with ``--verbose``."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                            format="nsynth-live: %(levelname)s: %(message)s", stream=sys.stderr)


def _prepare(args: argparse.Namespace) -> _Setup:
    if args.offline and args.play is None:
        raise AppError("--offline renders a MIDI file: add --play FILE.mid (and --record OUT.wav)")
    if args.no_osc and args.osc_reply is not None:
        raise AppError("--osc-reply sends OSC feedback, but --no-osc turns OSC off: drop one of them")
    _check_writable(args.record, force=args.force, what="--record file")
    _check_writable(args.stats_json, force=args.force, what="--stats-json file")
    if args.record is not None and args.record.suffix.lower() != ".wav":
        raise AppError(f"--record writes WAV files; got {args.record} (use a .wav name)")
    events = (load_midi_events_or_explain(args.play, ignore_program_changes=args.ignore_program_changes)
              if args.play is not None else None)
    if events and args.preset != DEFAULT_PRESET:
        from nsynth_live.engine.events import ProgramChange

        if any(isinstance(event, ProgramChange) for _, event in events):  # the preset asked for may not last
            print(f"nsynth-live: {args.play} has program changes: they switch away from --preset {args.preset} "
                  "(--ignore-program-changes keeps it)", flush=True)
    automation = None
    if args.automation is not None:
        from nsynth_live.render.automation import AutomationError, read_automation_csv

        if args.play is None:
            raise AppError("--automation moves XY while a file plays: add --play FILE.mid")
        try:
            automation = read_automation_csv(args.automation)
        except AutomationError as error:
            raise AppError(str(error)) from error
    preset = load_preset_or_explain(args.preset)
    if args.bank is None and preset.bank:
        args.bank = Path(preset.bank)
    return _Setup(args=args, preset=preset, events=events, automation=automation)


def _run(args: argparse.Namespace, stop: _StopRequest) -> dict:
    from nsynth_live.io.audio import AudioDeviceError, list_output_devices, select_output_device, set_jack_client_name

    if args.list_devices:
        from nsynth_live.io.audio import format_device_list

        try:
            print(format_device_list(list_output_devices()))
        except AudioDeviceError as error:
            raise AppError(str(error), EXIT_RUNTIME) from error
        return {}

    setup = _prepare(args)
    if args.offline:
        out_path = args.record or unused_output_path(DEFAULT_OFFLINE_DIR, args.play.stem)
        return run_offline(setup, out_path, reason="--offline")

    os.environ.setdefault("JACK_NO_START_SERVER", "1")  # never spawn an audio server behind the user's back
    try:
        set_jack_client_name(JACK_CLIENT_NAME)
        device = select_output_device(args.audio_device, list_output_devices())
    except AudioDeviceError as error:
        if args.play is not None and args.audio_device is None:
            out_path = args.record or unused_output_path(DEFAULT_OFFLINE_DIR, args.play.stem)
            print(f"nsynth-live: no usable audio output device: {str(error).splitlines()[0]}", flush=True)
            print(f"nsynth-live: rendering offline instead; the result will be in {out_path}", flush=True)
            return run_offline(setup, out_path, reason="no audio device")
        raise AppError(str(error), EXIT_RUNTIME) from error
    try:
        return run_live(setup, device, stop)
    except AudioDeviceError as error:
        raise AppError(str(error), EXIT_RUNTIME) from error


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``run_live.py``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    stop = _StopRequest()

    def request_stop(signum, _frame):
        # While the instrument plays, Ctrl-C (or SIGTERM) asks the play loop to stop and clean up
        # (close the stream, write the recording, print the stats). Before that (loading, offline
        # rendering) and on a second Ctrl-C, leave at once: nothing is half-written, files are atomic.
        if stop.is_set() or not stop.playing:
            raise KeyboardInterrupt
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, request_stop)
    try:
        stats = _run(args, stop)
    except AppError as error:
        print(f"nsynth-live: error: {error}", file=sys.stderr, flush=True)
        return error.exit_code
    except KeyboardInterrupt:
        print("nsynth-live: interrupted", file=sys.stderr, flush=True)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not stats:
        return EXIT_OK
    stats["format_version"] = STATS_FORMAT_VERSION
    stats["max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB
    if args.stats_json is not None:
        write_json_atomically(args.stats_json, stats)
    if stats.get("mode") == "live":
        print(f"nsynth-live: {stats['xrun_count']} xruns, {stats['underrun_count']} underruns", flush=True)
    if stats.get("nonfinite_hops") or stats.get("nonfinite_voices"):
        print(f"nsynth-live: NaN / inf model output: cut {stats['nonfinite_voices']} voice(s), muted "
              f"{stats['nonfinite_hops']} hop(s) (the model file may be corrupt)", flush=True)
    print("nsynth-live stats: " + json.dumps(stats, sort_keys=True), flush=True)
    return EXIT_OK
