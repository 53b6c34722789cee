#!/usr/bin/env python3
"""Render a timbre grid into a multisample bank: nsynth-render-bank --help (code in nsynth_live.cli)."""
import sys

from nsynth_live.cli.render_bank import main

if __name__ == "__main__":
    sys.exit(main())
