"""Soak and burst test of the live instrument on a JACK dummy server: xruns, underruns, silences, RSS.

Starts ``jackd -d dummy`` (48 kHz, ``--period`` frames) under a unique name, runs ``run_live.py``
live on it with ``--max-voices``, and plays it from a probe client (``JACK-Client``) over JACK MIDI
while moving XY over OSC (python-osc, 20 messages/s, a random walk with rests so that the attack
cache is re-rendered now and then). The probe records the instrument's left output on the same
frame clock. Scenarios:

* ``soak``: random notes (MIDI 21-108, velocity 20-127, 0.3-3 s long) at the rate that keeps about
  ``--voices`` notes held, and the sustain pedal down for 0.5-2 s every 3-6 s;
* ``chord``: every 2 s, all 128 keys at once (held 1 s), over two notes held throughout (with fewer
  than 128 voices those two are stolen by the chord, the oldest first: then the silences after
  each chord are voice stealing, and the figure that counts is the silence during the chords);
* ``rate``: 1000 note-ons per second (30-ms notes, random keys), over two notes held throughout.

Prints: the instrument's xruns and underruns, the xruns jackd logged and whom it blamed, blocks
(256 frames) that were silent (below -100 dBFS) while a note was held, and while a note of a
burst (chord, rate) was, the attack cache's counts
(cached notes, late hand-overs, re-renders), and the instrument's RSS at 10 s and at the end.

Usage (from the repository root; needs Debian jackd2 and the JACK-Client package; do not run it
while another CPU-heavy job runs, the figures would be the other job's)::

    python benchmarks/soak_jack.py [--scenario soak|chord|rate] [--seconds 600] [--voices 64]
        [--period 256] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.jack_session import (  # noqa: E402
    INSTRUMENT_AUDIO_PORTS,
    INSTRUMENT_MIDI_CLIENT,
    InstrumentProcess,
    JackProbe,
    JackServer,
    jack_tools_missing,
    realtime_scheduling_allowed,
)

SAMPLE_RATE = 48_000  # Hz of the JACK server
SILENT_PEAK = 1e-5  # -100 dBFS: a block below this while a note is held is a silence
HELD_GRACE_SECONDS = 0.02  # a note counts as held from 20 ms after its note-on


# A random walk of XY over OSC at 20 messages/s, resting about 1 s in every 2.5 s of moves (argv: port,
# seconds, 1 to move / 0 to stay still).
XY_SENDER = """
import random, sys, time
from pythonosc.udp_client import SimpleUDPClient
port, seconds, move = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
osc, rng, x, y = SimpleUDPClient("127.0.0.1", port), random.Random(7), 0.5, 0.5
start = time.monotonic()
while move and time.monotonic() - start < seconds:
    if rng.random() < 0.02:
        time.sleep(1.0)
        continue
    x = min(1.0, max(0.0, x + rng.uniform(-0.05, 0.05)))
    y = min(1.0, max(0.0, y + rng.uniform(-0.05, 0.05)))
    osc.send_message("/nsynth/xy", [x, y])
    time.sleep(0.05)
"""


def schedule(scenario: str, seconds: float, voices: int, seed: int = 1) -> tuple[list, list, list]:
    """MIDI messages ``[(s, bytes)]``, the held intervals ``[(on_s, off_s)]`` of its notes and
    whether each note belongs to a burst."""
    rng = random.Random(seed)
    messages: list[tuple[float, list[int]]] = []
    held: list[tuple[float, float]] = []
    burst: list[bool] = []  # per note: part of a burst
    lead, end = 0.5, seconds - 1.0

    def note(on: float, off: float, key: int, velocity: int, in_burst: bool = False) -> None:
        messages.append((on, [0x90, key, velocity]))
        messages.append((off, [0x80, key, 0]))
        held.append((on, off))
        burst.append(in_burst)

    if scenario == "soak":
        mean_length = 1.65
        rate = voices / mean_length
        t = lead
        while t < end - 3.0:
            length = rng.uniform(0.3, 3.0)
            note(t, t + length, rng.randint(21, 108), rng.randint(20, 127))
            t += rng.expovariate(rate)
        t = lead + rng.uniform(3, 6)
        while t < end - 2.0:
            down = rng.uniform(0.5, 2.0)
            messages.append((t, [0xB0, 64, 127]))
            messages.append((t + down, [0xB0, 64, 0]))
            t += down + rng.uniform(3, 6)
    else:
        note(lead, end, 48, 100)
        note(lead, end, 55, 100)
        t = lead + 0.5
        if scenario == "chord":
            while t < end - 1.5:
                for key in range(128):
                    if key not in (48, 55):
                        note(t, t + 1.0, key, 90, True)
                t += 2.0
        elif scenario == "rate":
            while t < end - 0.5:
                key = rng.choice([k for k in range(21, 109) if k not in (48, 55)])
                note(t, t + 0.03, key, rng.randint(40, 127), True)
                t += 0.001
        else:
            raise ValueError(f"unknown scenario {scenario!r}")
    return messages, held, burst


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process in MiB (Linux /proc), None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def silent_blocks(audio: np.ndarray, held: list, sent_on: np.ndarray, sent_off: np.ndarray, *, block: int = 256) -> int:
    """Blocks below ``SILENT_PEAK`` while at least one scheduled note was held."""
    n_blocks = audio.size // block
    if n_blocks == 0:
        return 0
    peaks = np.abs(audio[:n_blocks * block]).reshape(n_blocks, block).max(axis=1)
    holding = np.zeros(n_blocks + 1, dtype=np.int64)
    grace = int(HELD_GRACE_SECONDS * SAMPLE_RATE)
    for on, off in zip(sent_on, sent_off):
        if on < 0 or off < 0:
            continue
        first, last = (int(on) + grace) // block + 1, int(off) // block
        if last > first:
            holding[min(first, n_blocks)] += 1
            holding[min(last, n_blocks)] -= 1
    held_now = np.cumsum(holding)[:n_blocks] > 0
    return int(np.sum(held_now & (peaks < SILENT_PEAK)))


def measure(*, scenario: str, seconds: float, voices: int, period_frames: int, model: Path, realtime: bool,
            workdir: Path, move_xy: bool = True, in_process: bool = False) -> dict:
    """Run one session; returns the figures as a dict."""
    messages, held, burst = schedule(scenario, seconds, voices)
    osc_port = 9000 + random.Random().randint(0, 999)
    server = JackServer(sample_rate=SAMPLE_RATE, period_frames=period_frames, log_path=workdir / "jackd.log",
                        realtime=realtime)
    rss = {}
    with server:
        instrument = InstrumentProcess(
            ["--model", str(model), "--block-size", str(period_frames), "--sample-rate", str(SAMPLE_RATE),
             "--max-voices", str(voices), "--osc-port", str(osc_port),
             *(["--realtime-priority", "1"] if realtime else []),
             *(["--audio-in-process"] if in_process else [])],
            env=server.env, stats_path=workdir / "stats.json", repo_root=REPO_ROOT,
        )
        pid = instrument._process.pid  # noqa: SLF001 - this benchmark's own child
        probe = None
        try:
            instrument.wait_ready()
            probe = JackProbe(server_name=server.name, capture_seconds=seconds + 1, channels=1)
            midi = probe.ports(f"^{INSTRUMENT_MIDI_CLIENT}:", is_midi=True)
            audio_ports = sorted(probe.ports(INSTRUMENT_AUDIO_PORTS, is_audio=True))
            probe.connect(probe.midi_port_name, midi[0])
            probe.connect(audio_ports[0], probe.input_port_names()[0])
            time.sleep(0.3)
            xruns_before = probe.xrun_count
            # XY moves come from a child process: a sender thread here would share the GIL with
            # the probe's JACK callback and make the probe itself late
            sender = subprocess.Popen([sys.executable, "-c", XY_SENDER, str(osc_port), str(seconds), str(int(move_xy))])
            probe.start(messages)
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                time.sleep(10.0 - (time.monotonic() - started) % 10.0)
                value = rss_mib(pid)
                if value is not None:
                    rss.setdefault("at_10_s", value)
                    rss["last"] = value
            sender.wait(timeout=10)
            probe.wait_until(seconds - 0.5, timeout_seconds=30)
            probe_xruns = probe.xrun_count - xruns_before
            audio = probe.captured()[:, 0]
            sent = probe.sent_frames
        finally:
            if probe is not None:
                probe.close()
            exit_code = instrument.stop()
        if exit_code != 0:
            raise RuntimeError(f"the instrument exited with {exit_code}:\n{instrument.output}")
        stats = instrument.stats()
        late_clients = server.late_clients()
    ordered = sorted(range(len(messages)), key=lambda i: messages[i][0])
    frames_of = {index: sent[rank] for rank, index in enumerate(ordered)}
    on_frames, off_frames = [], []
    for index in range(0, len(messages), 1):
        status = messages[index][1][0]
        if status == 0x90:
            on_frames.append(frames_of[index])
            off_frames.append(frames_of[index + 1])  # note() appends the note-off right after
    on_frames, off_frames = np.array(on_frames), np.array(off_frames)
    silences = silent_blocks(audio, held, on_frames, off_frames)
    in_burst = np.array(burst, dtype=bool)
    burst_silences = silent_blocks(audio, held, on_frames[in_burst], off_frames[in_burst]) if in_burst.any() else None
    return {
        "scenario": scenario,
        "seconds": seconds,
        "voices": voices,
        "period_frames": period_frames,
        "jack_realtime": realtime,
        "xy_moves": move_xy,
        "audio_in_process": in_process,
        "note_ons": sum(1 for _, m in messages if m[0] == 0x90),
        "instrument_xruns": stats["xrun_count"],
        "instrument_underruns": stats["underrun_count"],
        "jack_xruns_seen_by_probe": probe_xruns,
        "late_clients": late_clients,
        "silent_blocks_while_held": silences,
        "silent_blocks_during_bursts": burst_silences,
        "attack_cache": stats.get("attack_cache"),
        "rss_mib_at_10_s": rss.get("at_10_s"),
        "rss_mib_last": rss.get("last"),
        "max_rss_mib": stats.get("max_rss_mib"),
        "nonfinite_hops": stats.get("nonfinite_hops"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=("soak", "chord", "rate"), default="soak")
    parser.add_argument("--seconds", type=float, default=600.0, help="length of the session (default 600 s)")
    parser.add_argument("--voices", type=int, default=64, help="--max-voices of the instrument (default 64)")
    parser.add_argument("--period", type=int, default=256, help="JACK period and block size, frames (default 256)")
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "sing_default.onnx")
    parser.add_argument("--realtime", choices=("auto", "on", "off"), default="auto",
                        help="run jackd and the instrument with real-time scheduling (auto: if allowed)")
    parser.add_argument("--no-xy", action="store_true", help="do not move XY (no OSC, no cache re-renders)")
    parser.add_argument("--audio-in-process", action="store_true",
                        help="run the instrument's audio callback in its own process (the old design)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    missing = jack_tools_missing()
    if missing:
        print(f"soak_jack: {missing}", file=sys.stderr)
        return 1
    realtime = {"on": True, "off": False, "auto": None}[args.realtime]
    if realtime is None:
        realtime = realtime_scheduling_allowed()
    with tempfile.TemporaryDirectory(prefix="nsynth-soak-") as workdir:
        result = measure(scenario=args.scenario, seconds=args.seconds, voices=args.voices,
                         period_frames=args.period, model=args.model, realtime=realtime, workdir=Path(workdir),
                         move_xy=not args.no_xy, in_process=args.audio_in_process)
    cache = result["attack_cache"] or {}
    print(f"soak_jack {result['scenario']}: {result['seconds']:.0f} s at {SAMPLE_RATE} Hz, period {result['period_frames']}, "
          f"max voices {result['voices']}, JACK realtime={realtime}, {result['note_ons']} note-ons, audio callback "
          f"{'in the instrument process' if result['audio_in_process'] else 'in its own process'}")
    print(f"  instrument xruns {result['instrument_xruns']}, underruns {result['instrument_underruns']}; "
          f"JACK xruns seen by the probe {result['jack_xruns_seen_by_probe']}, blamed on {result['late_clients']}")
    print(f"  silent blocks while a note was held: {result['silent_blocks_while_held']}"
          + ("" if result["silent_blocks_during_bursts"] is None
             else f"; while a note of a burst was: {result['silent_blocks_during_bursts']}"))
    print(f"  attack cache: {cache.get('cached_notes')} cached, {cache.get('uncached_notes')} not, "
          f"{cache.get('late_handoffs')} late hand-overs, {cache.get('builds')} renders (last {cache.get('last_build_seconds')} s), "
          f"{cache.get('builds_abandoned')} abandoned (the timbre moved on)")
    print(f"  RSS: {result['rss_mib_at_10_s']} MiB at 10 s, {result['rss_mib_last']} MiB at the end "
          f"(peak {result['max_rss_mib']} MiB)")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
