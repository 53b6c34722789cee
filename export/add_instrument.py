#!/usr/bin/env python3
"""Add an instrument of your own (a folder of notes or a SoundFont preset) to model v3: nsynth-add-instrument --help (code in nsynth_live.cli)."""
import sys

from nsynth_live.cli.add_instrument import main

if __name__ == "__main__":
    sys.exit(main())
