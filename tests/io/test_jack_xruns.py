"""Who caused a JACK xrun: jackd's log, parsed (tests.support.jack_session.JackXrun).

The parser is checked on the line patterns a real jackd 1.9.21 wrote here (dummy driver,
real-time mode), and then against a real server: a client that overruns its deadline is named,
and a server stopped for 40 ms is named instead of the idle client its catch-up cycle caught.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.support.jack_session import (
    SERVER_CULPRIT,
    JackServer,
    JackUnavailable,
    jack_tools_missing,
    parse_jack_xruns,
    realtime_scheduling_allowed,
)

PERIOD_SECONDS = 512 / 48_000


def client_line(client: str, state: str) -> str:
    return f"JackEngine::XRun: client = {client} was not finished, state = {state}"


PROCESS_ERROR = "JackAudioDriver::ProcessGraphAsyncMaster: Process error"


def test_a_late_driver_and_its_catch_up_cycle_are_one_xrun_caused_by_the_server():
    # seen in a failed e2e run: the driver woke late, then the client it had just triggered was
    # still running when the catch-up cycle began at once
    lines = [
        (10.0, "JackTimedDriver::Process XRun = 32 usec"),
        (10.0001, client_line("nsynth-live-audio", "Running")),
        (10.0001, client_line("nsynth-live", "Triggered")),
        (10.0001, client_line("nsynth-probe", "Triggered")),
        (10.0001, PROCESS_ERROR),
    ]
    (xrun,) = parse_jack_xruns(lines, link_seconds=2 * PERIOD_SECONDS)
    assert xrun.driver_late and xrun.driver_usec == 32
    assert xrun.culprits == (SERVER_CULPRIT,)
    assert [client for client, _ in xrun.unfinished] == ["nsynth-live-audio", "nsynth-live", "nsynth-probe"]


def test_the_running_client_is_the_culprit_and_the_ones_waiting_for_it_are_not():
    lines = [
        (5.0, client_line("slowpoke", "Running")),
        (5.0, client_line("nsynth-probe", "Triggered")),
        (5.0, PROCESS_ERROR),
        (5.011, client_line("slowpoke", "Triggered")),  # still busy with the previous cycle
        (5.011, client_line("nsynth-probe", "Triggered")),
        (5.011, PROCESS_ERROR),
    ]
    first, second = parse_jack_xruns(lines, link_seconds=2 * PERIOD_SECONDS)
    assert first.culprits == ("slowpoke",) and not first.driver_late
    # none had started: each unfinished client may be the one that was not woken in time
    assert second.culprits == ("slowpoke", "nsynth-probe")


def test_a_driver_line_long_before_a_client_xrun_does_not_excuse_it():
    lines = [
        (1.0, "JackTimedDriver::Process XRun = 40 usec"),
        (3.5, client_line("nsynth-live-audio", "Running")),
        (3.5, client_line("nsynth-probe", "Triggered")),
        (3.5, PROCESS_ERROR),
    ]
    server_late, instrument_late = parse_jack_xruns(lines, link_seconds=2 * PERIOD_SECONDS)
    assert server_late.culprits == (SERVER_CULPRIT,) and server_late.unfinished == ()
    assert instrument_late.culprits == ("nsynth-live-audio",) and not instrument_late.driver_late


def test_other_log_lines_are_not_xruns():
    lines = [(0.0, "jackdmp 1.9.21"), (0.1, "JACK server starting in realtime mode with priority 10"),
             (9.0, "Jack main caught signal 15")]
    assert parse_jack_xruns(lines, link_seconds=0.02) == []


# ---------------------------------------------------------------------------------------------
# against a real jackd
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def server_and_client(tmp_path):
    reason = jack_tools_missing()
    if reason:
        pytest.skip(reason)
    import jack

    server = JackServer(sample_rate=48_000, period_frames=512, log_path=tmp_path / "jackd.log",
                        realtime=realtime_scheduling_allowed())
    try:
        server.start()
    except JackUnavailable as error:
        pytest.fail(f"jackd is installed but did not start: {error}")
    client = jack.Client("busy-client", servername=server.name, no_start_server=True)
    out = client.outports.register("out")
    busy = {"cycles_left": 0, "seconds": 0.0, "done": 0}

    def process(frames: int) -> None:
        out.get_array().fill(0.0)
        if busy["cycles_left"] > 0:
            busy["cycles_left"] -= 1
            if busy["cycles_left"] == 0:
                end = time.perf_counter() + busy["seconds"]
                while time.perf_counter() < end:  # spin: a client that computes too long
                    pass
                busy["done"] += 1

    client.set_process_callback(process)
    client.activate()
    time.sleep(0.3)
    yield server, busy
    client.deactivate()
    client.close()
    server.stop()


def wait_for(condition, timeout_seconds: float = 3.0) -> None:
    end = time.monotonic() + timeout_seconds
    while time.monotonic() < end and not condition():
        time.sleep(0.02)


@pytest.mark.jack
def test_a_client_that_overruns_its_deadline_is_named(server_and_client):
    server, busy = server_and_client
    before = len(server.xruns())
    busy["seconds"], busy["cycles_left"] = 3 * PERIOD_SECONDS, 5
    wait_for(lambda: busy["done"] == 1 and len(server.xruns()) > before)
    time.sleep(0.2)
    new = server.xruns()[before:]
    assert new, "a client busy for 3 periods caused no xrun that jackd logged"
    assert "busy-client" in new[0].culprits and not new[0].driver_late, new
    assert server.late_clients().get("busy-client", 0) >= 1


@pytest.mark.jack
def test_a_stalled_server_is_named_not_the_idle_client(server_and_client):
    server, _ = server_and_client
    time.sleep(0.2)
    before = len(server.xruns())
    os.kill(server.pid, signal.SIGSTOP)  # the whole server misses ~4 deadlines
    time.sleep(0.04)
    os.kill(server.pid, signal.SIGCONT)
    wait_for(lambda: len(server.xruns()) > before)
    time.sleep(0.2)
    new = server.xruns()[before:]
    assert new, "jackd logged no xrun after it was stopped for 40 ms"
    assert new[0].driver_late and new[0].culprits == (SERVER_CULPRIT,), new
    assert all("busy-client" not in x.culprits for x in new), new
