#!/usr/bin/env python3
"""Convert Magenta's NSynth WaveNet checkpoint: nsynth-convert-magenta --help (code in nsynth_live.cli)."""
import sys

from nsynth_live.cli.convert_magenta_checkpoint import main

if __name__ == "__main__":
    sys.exit(main())
