"""MIDI-in to audio-out latency of the live instrument, measured on a JACK dummy server.

Starts ``jackd -d dummy`` under a unique name, runs ``run_live.py`` live on it (PortAudio's JACK
host API, JACK MIDI input), and from a probe client (``JACK-Client``) sends separated notes to the
instrument's MIDI port while recording its output ports. Sending and recording share JACK's frame
clock, so each note's latency is (onset frame - note-on frame) / sample rate, where the onset is
the first sample at -40 dB of the note's peak (its first sound) and, second column, at -20 dB
(which includes part of the generated attack). Prints a table, the engine's expected worst case,
and the xruns (the instrument's own count and the clients JACK found late).

Usage (from the repository root; needs Debian jackd2 and the JACK-Client package)::

    python benchmarks/latency_jack.py [--model models/sing_default.onnx] [--notes 12]
        [--period 256] [--block-size 256] [--realtime auto|on|off] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.jack_session import (  # noqa: E402
    InstrumentProcess,
    JackServer,
    connect_probe_to_instrument,
    jack_tools_missing,
    note_latencies_ms,
    note_schedule,
    realtime_scheduling_allowed,
)

SAMPLE_RATE = 48_000  # Hz of the JACK server


def measure(*, model: Path, notes: int, period_frames: int, block_size: int, realtime: bool, workdir: Path,
            instrument_priority: int | None = None) -> dict:
    """Run one session; returns the figures (ms, counts) as a dict."""
    pitches = [48 + (7 * i) % 30 for i in range(notes)]  # spread over MIDI 48-77
    messages = note_schedule(pitches, note_seconds=0.3, gap_seconds=0.7)
    total_seconds = messages[-1][0] + 0.7
    server = JackServer(sample_rate=SAMPLE_RATE, period_frames=period_frames, log_path=workdir / "jackd.log",
                        realtime=realtime)
    with server:
        instrument = InstrumentProcess(
            ["--model", str(model), "--block-size", str(block_size), "--sample-rate", str(SAMPLE_RATE), "--no-osc",
             *([] if instrument_priority is None else ["--realtime-priority", str(instrument_priority)])],
            env=server.env, stats_path=workdir / "stats.json", repo_root=REPO_ROOT,
        )
        try:
            instrument.wait_ready()
            probe = connect_probe_to_instrument(server.name, capture_seconds=total_seconds + 1)
            xruns_before = probe.xrun_count
            probe.start(messages)
            probe.wait_until(total_seconds)
            probe_xruns = probe.xrun_count - xruns_before
            xrun_seconds = list(probe.xrun_seconds)
            audio = probe.captured()[:, 0]
            sent = probe.sent_frames
            probe.close()
        finally:
            exit_code = instrument.stop()
        if exit_code != 0:
            raise RuntimeError(f"the instrument exited with {exit_code}:\n{instrument.output}")
        stats = instrument.stats()
        late_clients = server.late_clients()
    latencies = note_latencies_ms(audio, sent, SAMPLE_RATE)
    first_sound = note_latencies_ms(audio, sent, SAMPLE_RATE, threshold_db=-40.0)
    heard = [value for value in latencies if value is not None]
    heard_first = [value for value in first_sound if value is not None]
    return {
        "first_sound_latencies_ms": first_sound,
        "first_sound_median_ms": float(np.median(heard_first)) if heard_first else None,
        "first_sound_max_ms": float(np.max(heard_first)) if heard_first else None,
        "first_sound_jitter_ms": float(np.max(heard_first) - np.min(heard_first)) if heard_first else None,
        "period_frames": period_frames,
        "block_size": block_size,
        "jack_realtime": realtime,
        "instrument_realtime_priority": instrument_priority,
        "pitches_midi": pitches,
        "latencies_ms": latencies,
        "notes_heard": len(heard),
        "latency_median_ms": float(np.median(heard)) if heard else None,
        "latency_p90_ms": float(np.percentile(heard, 90)) if heard else None,
        "latency_max_ms": float(np.max(heard)) if heard else None,
        "expected_worst_case_ms": stats["latency"]["total_ms"],
        "expected_note_on_ms": stats["latency"].get("note_on_ms"),
        "attack_cache": stats.get("attack_cache"),
        "instrument_xruns": stats["xrun_count"],
        "instrument_underruns": stats["underrun_count"],
        "jack_xruns_seen_by_probe": probe_xruns,
        "jack_xrun_seconds": [round(t, 3) for t in xrun_seconds],
        "note_on_seconds": [round(t, 3) for t, m in messages if m[0] == 0x90],
        "late_clients": late_clients,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "sing_default.onnx")
    parser.add_argument("--notes", type=int, default=12, help="notes to send (default: %(default)s)")
    parser.add_argument("--period", type=int, default=256, help="JACK period, frames (default: %(default)s)")
    parser.add_argument("--block-size", type=int, default=256, help="instrument block, frames (default: %(default)s)")
    parser.add_argument("--realtime", choices=("auto", "on", "off"), default="auto",
                        help="JACK real-time scheduling (auto: where this machine allows it)")
    parser.add_argument("--instrument-priority", type=int, metavar="P",
                        help="pass --realtime-priority P to the instrument (default: 1 where JACK runs real-time)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    missing = jack_tools_missing()
    if missing:
        print(f"cannot measure: {missing}", file=sys.stderr)
        return 1
    if not args.model.is_file():
        print(f"cannot measure: model file {args.model} not found (pass --model)", file=sys.stderr)
        return 1
    realtime = {"on": True, "off": False, "auto": None}[args.realtime]
    if realtime is None:
        realtime = realtime_scheduling_allowed()
    priority = args.instrument_priority if args.instrument_priority is not None else (1 if realtime else None)
    with tempfile.TemporaryDirectory(prefix="nsynth-latency-") as workdir:
        result = measure(model=args.model, notes=args.notes, period_frames=args.period, block_size=args.block_size,
                         realtime=realtime, workdir=Path(workdir), instrument_priority=priority or None)
    print(f"MIDI-in to audio-out latency on JACK (dummy driver, {SAMPLE_RATE} Hz, period {args.period}, "
          f"block {args.block_size}, JACK realtime={realtime}, instrument priority {priority}), model {args.model.name}")
    print("  note      onset at -40 dB (first sound)   at -20 dB of the note's peak (includes attack)")
    for pitch, first, latency in zip(result["pitches_midi"], result["first_sound_latencies_ms"], result["latencies_ms"]):
        cells = ["not heard" if value is None else f"{value:6.1f} ms" for value in (first, latency)]
        print(f"  MIDI {pitch:3d}: {cells[0]:>12}                    {cells[1]:>12}")
    if result["notes_heard"]:
        print(f"  first sound: median {result['first_sound_median_ms']:.1f} ms, max {result['first_sound_max_ms']:.1f} ms, "
              f"jitter (max - min) {result['first_sound_jitter_ms']:.1f} ms; "
              f"-20 dB onset: median {result['latency_median_ms']:.1f} ms, p90 {result['latency_p90_ms']:.1f} ms, "
              f"max {result['latency_max_ms']:.1f} ms over {result['notes_heard']} notes "
              + (f"(expected worst case: note-on from the attack cache {result['expected_note_on_ms']:.1f} ms, "
                 f"other events {result['expected_worst_case_ms']:.1f} ms)" if result["expected_note_on_ms"] is not None
                 else f"(engine's expected worst case {result['expected_worst_case_ms']:.1f} ms)"))
    cache = result["attack_cache"] or {}
    print(f"  attack cache: {cache.get('cached_notes')} notes cached, {cache.get('uncached_notes')} not, "
          f"{cache.get('late_handoffs')} late hand-overs, last build {cache.get('last_build_seconds')} s")
    print(f"  instrument xruns {result['instrument_xruns']}, underruns {result['instrument_underruns']}; "
          f"JACK xruns seen by the probe {result['jack_xruns_seen_by_probe']} "
          f"(at {result['jack_xrun_seconds']} s); xruns by culprit ('jackd': the server itself was late) "
          f"{result['late_clients']}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
