#!/usr/bin/env python3
"""Render an NSynth-format dataset from a SoundFont: nsynth-build-dataset --help (code in nsynth_live.cli)."""
import sys

from nsynth_live.cli.build_dataset import main

if __name__ == "__main__":
    sys.exit(main())
