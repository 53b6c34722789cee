#!/usr/bin/env python3
"""NSynth WaveNet decode: nsynth-decode --help (code in nsynth_live.cli)."""
import sys

from nsynth_live.cli.decode import main

if __name__ == "__main__":
    sys.exit(main())
