#!/usr/bin/env python3
"""Convert SING's published weights (sing.th): nsynth-convert-sing --help (code in nsynth_live.cli)."""
import sys

from nsynth_live.cli.convert_sing_checkpoint import main

if __name__ == "__main__":
    sys.exit(main())
