#!/usr/bin/env bash
# First command of the README: set up (if needed) and play the bundled Bach chorale on the default
# SING model. Extra arguments go to run_live.py (e.g. --audio-device NAME, --preset P, --xy X Y).
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
exec .venv/bin/python run_live.py --play examples/bach_bwv66_6.mid "$@"
