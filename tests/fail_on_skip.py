"""Pytest plugin: with ``NSYNTH_LIVE_FAIL_ON_SKIP=1`` a run that skipped any test fails.

``.ci/run`` sets it. On a machine that ``test.sh`` has set up, every test's dependency is
installed (TensorFlow for the converter tests, jackd2 and liblo-tools for the end-to-end tests,
the Debian SoundFont, the shipped model), so a skip there means a set-up step failed quietly and
the tests the issues rely on did not run. The run then fails and the summary names each skipped
test with its reason. Without the variable a skip stays a skip (a partial set-up on a developer's
machine).
"""

from __future__ import annotations

import os

import pytest

FAIL_ON_SKIP_ENV = "NSYNTH_LIVE_FAIL_ON_SKIP"


def _enabled() -> bool:
    return os.environ.get(FAIL_ON_SKIP_ENV) == "1"


def _skipped(config) -> list:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    return reporter.stats.get("skipped", []) if reporter is not None else []


def pytest_sessionfinish(session, exitstatus):
    if _enabled() and exitstatus == pytest.ExitCode.OK and _skipped(session.config):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = _skipped(config)
    if not (_enabled() and skipped):
        return
    terminalreporter.section(f"{FAIL_ON_SKIP_ENV}=1: {len(skipped)} skipped, so this run fails", sep="=", red=True)
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        terminalreporter.line(f"SKIPPED {report.nodeid}: {reason}")
