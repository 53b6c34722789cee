#!/usr/bin/env python3
"""Peak memory of long offline renders: ``run_live.py --offline`` on pieces of growing length.

Builds a MIDI file of the requested length by repeating the bundled chorale (23 s), renders it with
the default model in a subprocess, and prints the render's peak RSS (the ``max_rss_mib`` of its
``--stats-json``), the audio's length and the render speed. A renderer that streams to the file
keeps the peak flat; one that holds the piece grows with it (about 11 MB per minute of stereo float
at 48 kHz, plus copies).

    python benchmarks/offline_memory.py --minutes 1 30
    python benchmarks/offline_memory.py --minutes 1 10 --repo /tmp/old-checkout   # another version's run_live.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mido

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "bach_bwv66_6.mid"


def long_midi(minutes: float, path: Path) -> Path:
    """The chorale repeated (all tracks merged into one) until ``minutes`` are filled."""
    source = mido.MidiFile(str(EXAMPLE))
    merged = mido.merge_tracks(source.tracks)
    passes = max(1, int(round(minutes * 60.0 / source.length)))
    out = mido.MidiFile(type=0, ticks_per_beat=source.ticks_per_beat)
    track = mido.MidiTrack()
    out.tracks.append(track)
    carry = 0
    for _ in range(passes):
        for message in merged:
            if message.is_meta and message.type == "end_of_track":
                carry += message.time
                continue
            if message.is_meta and message.type != "set_tempo":
                continue
            track.append(message.copy(time=message.time + carry))
            carry = 0
    track.append(mido.MetaMessage("end_of_track", time=carry))
    out.save(str(path))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 30.0], help="lengths to render")
    parser.add_argument("--repo", type=Path, default=ROOT, help="checkout whose run_live.py renders (default: this one)")
    args = parser.parse_args()
    print(f"renderer: {args.repo / 'run_live.py'}")
    print(f"{'minutes':>8} {'audio s':>8} {'peak RSS MiB':>13} {'render s':>9} {'x real time':>12}")
    with tempfile.TemporaryDirectory() as folder:
        for minutes in args.minutes:
            midi = long_midi(minutes, Path(folder) / f"long{minutes:g}.mid")
            out, stats = Path(folder) / f"long{minutes:g}.wav", Path(folder) / f"long{minutes:g}.json"
            started = time.perf_counter()
            subprocess.run([sys.executable, str(args.repo / "run_live.py"), "--offline", "--play", str(midi),
                            "--record", str(out), "--stats-json", str(stats), "--force"],
                           check=True, cwd=args.repo, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - started
            result = json.loads(stats.read_text())
            print(f"{minutes:>8g} {result['audio_seconds']:>8.0f} {result['max_rss_mib']:>13.1f} "
                  f"{result['render_seconds']:>9.1f} {result['audio_seconds'] / result['render_seconds']:>12.1f}"
                  f"   (wall {wall:.0f} s)")
            out.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
