#!/usr/bin/env python3
"""NSynth WaveNet encode: nsynth-encode --help (code in nsynth_live.cli)."""
import sys

from nsynth_live.cli.encode import main

if __name__ == "__main__":
    sys.exit(main())
