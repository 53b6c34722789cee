"""Fixtures of the end-to-end tests under a JACK dummy server."""

import pytest

from tests.support.jack_session import JackServer, JackUnavailable, jack_tools_missing, realtime_scheduling_allowed

SAMPLE_RATE = 48_000  # Hz of the JACK server
PERIOD_FRAMES = 512  # frames per JACK cycle (10.7 ms)


@pytest.fixture
def jack_server(tmp_path):
    """A JACK dummy server at 48 kHz / 512 frames under a unique name, always stopped at teardown.

    JACK's usual real-time mode where the machine allows it (else --no-realtime, as on most CI
    containers): without it, other busy processes on a 2-core machine delay even JACK's own C++
    clients past the deadline.
    """
    reason = jack_tools_missing()
    if reason:
        pytest.skip(reason)
    server = JackServer(sample_rate=SAMPLE_RATE, period_frames=PERIOD_FRAMES, log_path=tmp_path / "jackd.log",
                        realtime=realtime_scheduling_allowed())
    try:
        server.start()
    except JackUnavailable as error:
        pytest.fail(f"jackd is installed but did not start: {error}")
    yield server
    server.stop()
