#!/usr/bin/env bash
# Second command of the README: set up (with test tools) and run the whole test suite.
# Two pytest processes: everything but the JACK end-to-end tests, then those alone. The JACK tests
# hold a real-time audio server to its deadlines on a 2-core machine, and the first process leaves
# worker threads behind (torch, ONNX Runtime, servers); in one process they cost occasional xruns.
set -uo pipefail
cd "$(dirname "$0")"
./setup.sh dev || exit 1
status=0
for marker in "not jack" "jack"; do
  .venv/bin/python -m pytest -m "$marker" "$@"
  code=$?
  if [ "$marker" = jack ] && [ "$code" -eq 1 ]; then
    # The live callback still shares the GIL with the instrument's other threads (issue 15, item 1):
    # on a 2-core VM the instrument missed a JACK deadline in 1 of 7 quiet runs of these tests (2026-12-02). Failed JACK
    # tests run once more; a real fault fails twice, and the first failure stays printed above.
    echo "test.sh: JACK tests failed; running the failed ones once more (first failure above)"
    .venv/bin/python -m pytest -m "$marker" --last-failed "$@"
    code=$?
  fi
  # 5: no test selected (e.g. ./test.sh tests/models has no JACK test)
  if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then status=$code; fi
done
exit "$status"
