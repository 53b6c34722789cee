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
  # Missed JACK deadlines on a 2-core VM come and go with the machine: on an Intel Xeon VM (2026-12-02)
  # one e2e test failed 3 of 5 runs at bf9e52f and 1 of 3 at the next version, one fresh-clone run had
  # 65 xruns in one test and none on the next run. Failed JACK tests run up to twice more; a real
  # fault fails three times, and every failure stays printed above.
  for attempt in 1 2; do
    if [ "$marker" != jack ] || [ "$code" -ne 1 ]; then break; fi
    echo "test.sh: JACK tests failed; running the failed ones again (attempt $attempt of 2; failures above)"
    .venv/bin/python -m pytest -m "$marker" --last-failed "$@"
    code=$?
  done
  # 5: no test selected (e.g. ./test.sh tests/models has no JACK test)
  if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then status=$code; fi
done
exit "$status"
