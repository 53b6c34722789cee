#!/usr/bin/env bash
# Second command of the README: set up (with test tools) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh dev
exec .venv/bin/python -m pytest "$@"
