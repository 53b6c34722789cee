#!/usr/bin/env python3
"""Render an NSynth-format dataset (json/wav layout) from a SoundFont.

Example: python export/build_dataset.py data/nsynth-sf
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm  # noqa: E402

from nsynth_live.data.soundfont import DEBIAN_GM_SOUNDFONT, SoundFontDatasetConfig, build_soundfont_dataset  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="folder to write examples.json, audio/ and manifest.json into")
    parser.add_argument("--soundfont", default=DEBIAN_GM_SOUNDFONT, help="SF2/SF3 file (default: %(default)s)")
    parser.add_argument("--pitch-min", type=int, default=36, help="lowest MIDI note (default: %(default)s)")
    parser.add_argument("--pitch-max", type=int, default=84, help="highest MIDI note (default: %(default)s)")
    parser.add_argument("--velocities", default="25,50,75,100,127", help="comma-separated, from 25,50,75,100,127")
    args = parser.parse_args(argv)
    try:
        config = SoundFontDatasetConfig(
            soundfont_path=args.soundfont, pitch_min_midi=args.pitch_min, pitch_max_midi=args.pitch_max,
            velocities=tuple(int(v) for v in args.velocities.split(",")),
        )
        with tqdm(total=len(config.instruments), unit="instrument") as bar:
            notes = build_soundfont_dataset(config, args.out_dir, progress=lambda done, total: bar.update(1))
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(notes)} notes to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
