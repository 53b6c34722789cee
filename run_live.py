#!/usr/bin/env python3
"""Play the nsynth-live instrument: ``python run_live.py --help`` (logic in ``nsynth_live.app``)."""

import sys

from nsynth_live.app import main

if __name__ == "__main__":
    sys.exit(main())
