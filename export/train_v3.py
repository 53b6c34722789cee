#!/usr/bin/env python3
"""Train model v3 (harmonic-plus-noise SING, 48 kHz) and export it: nsynth-train-v3 --help (code in nsynth_live.cli)."""
import sys

from nsynth_live.cli.train_v3 import main

if __name__ == "__main__":
    sys.exit(main())
