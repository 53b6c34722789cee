"""The CI guard that turns a skipped test into a failed run (tests/fail_on_skip.py)."""

import pytest

from tests.fail_on_skip import FAIL_ON_SKIP_ENV

SUITE = """
import pytest

def test_runs():
    pass

def test_needs_a_missing_tool():
    pytest.skip("needs the Debian package frobnicator")
"""


def run(pytester, monkeypatch, *, env_value, suite=SUITE):
    if env_value is None:
        monkeypatch.delenv(FAIL_ON_SKIP_ENV, raising=False)
    else:
        monkeypatch.setenv(FAIL_ON_SKIP_ENV, env_value)
    pytester.makepyfile(test_suite=suite)
    return pytester.runpytest_inprocess("-p", "tests.fail_on_skip")


def test_a_skip_fails_the_run_and_is_named_when_the_variable_is_set(pytester, monkeypatch):
    result = run(pytester, monkeypatch, env_value="1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines([
        f"*{FAIL_ON_SKIP_ENV}=1: 1 skipped, so this run fails*",
        "SKIPPED test_suite.py::test_needs_a_missing_tool: *needs the Debian package frobnicator",
    ])


@pytest.mark.parametrize("env_value", [None, "0", ""])
def test_a_skip_is_only_a_skip_without_the_variable(pytester, monkeypatch, env_value):
    result = run(pytester, monkeypatch, env_value=env_value)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=1)
    assert "so this run fails" not in result.stdout.str()


def test_a_run_without_skips_passes_with_the_variable(pytester, monkeypatch):
    result = run(pytester, monkeypatch, env_value="1", suite="def test_runs():\n    pass\n")
    assert result.ret == pytest.ExitCode.OK


def test_a_failing_run_keeps_its_exit_code_and_still_names_its_skips(pytester, monkeypatch):
    suite = SUITE + "\ndef test_fails():\n    assert False\n"
    result = run(pytester, monkeypatch, env_value="1", suite=suite)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, skipped=1, failed=1)
    result.stdout.fnmatch_lines(["SKIPPED test_suite.py::test_needs_a_missing_tool: *frobnicator"])
