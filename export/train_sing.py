#!/usr/bin/env python3
"""Train the default SING model and export it: nsynth-train --help (code in nsynth_live.cli)."""
import sys

from nsynth_live.cli.train_sing import main

if __name__ == "__main__":
    sys.exit(main())
