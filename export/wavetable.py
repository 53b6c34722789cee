#!/usr/bin/env python3
"""Export a wavetable for Serum, Vital or Surge: nsynth-wavetable --help (code in nsynth_live.cli)."""
import sys

from nsynth_live.cli.wavetable import main

if __name__ == "__main__":
    sys.exit(main())
