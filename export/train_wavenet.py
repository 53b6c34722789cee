#!/usr/bin/env python3
"""Train the NSynth WaveNet autoencoder: nsynth-train-wavenet --help (code in nsynth_live.cli)."""
import sys

from nsynth_live.cli.train_wavenet import main

if __name__ == "__main__":
    sys.exit(main())
