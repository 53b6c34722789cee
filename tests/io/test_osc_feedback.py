"""OSC feedback (issue 16 item 5): the state -> messages mapping, the rate limit (fake clock), the
target rule, send errors, ``--osc-reply`` parsing, the peak meter, and a real client (``oscdump``
from Debian's liblo-tools) receiving the XY a MIDI CC moved."""

import itertools
import json
import logging
import math
import queue
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage

from nsynth_live.app import AppError, build_parser
from nsynth_live.engine import Engine, RealtimeRunner
from nsynth_live.engine.callback import C_READ
from nsynth_live.engine.events import (
    CC_X_DEFAULT,
    CC_Y_DEFAULT,
    AllSoundOff,
    ControlChange,
    NoteOn,
    SelectPreset,
)
from nsynth_live.engine.osc import OSC_ADDRESS_SPACE, parse_osc
from nsynth_live.io.osc_feedback import (
    PEAK_FLOOR_DBFS,
    FeedbackState,
    OscFeedback,
    OscReplyError,
    encode_message,
    engine_feedback_state,
    parse_reply_target,
    peak_dbfs,
    state_messages,
    xy_for_controller,
    xy_messages,
)
from nsynth_live.io.osc_server import OscController, OscServer
from nsynth_live.presets import list_presets
from tests.engine.additive_synth import AdditiveTestSynth
from tests.io.test_io_app_cli import run_cli

FEEDBACK_LOGGER = "nsynth_live.io.osc_feedback"
AXES = [dict(zip(("swap_xy", "invert_x", "invert_y"), flags)) for flags in itertools.product((False, True), repeat=3)]


class FakeClock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


class Sent:
    """A fake ``send``: decodes and records each datagram as (target, address, args); floats are
    float32 on the wire, recorded rounded to 6 decimals."""

    def __init__(self):
        self.items = []

    def __call__(self, datagram, target):
        message = OscMessage(datagram)
        args = tuple(round(arg, 6) if isinstance(arg, float) else arg for arg in message.params)
        self.items.append((target, message.address, args))

    def addresses(self):
        return [address for _, address, _ in self.items]

    def take(self):
        items, self.items = self.items, []
        return items


class State:
    """A settable state source (the engine seen from the feedback thread)."""

    def __init__(self, **kwargs):
        self.value = FeedbackState(**{"xy": (0.5, 0.5), "preset": "default", "voices": 0, "peak": 0.0, **kwargs})

    def set(self, **kwargs):
        self.value = FeedbackState(**{**self.value.__dict__, **kwargs})

    def __call__(self):
        return self.value


def feedback(state, controller=None, *, clock=None, **kwargs):
    clock = clock or FakeClock()
    sent = Sent()
    fb = OscFeedback(state, lambda: controller, clock=clock, send=sent, **kwargs)
    return fb, sent, clock


TABLET = OscController("192.168.1.20", 9000)


# ------------------------------------------------------------------------------ mapping
@pytest.mark.parametrize("axes", AXES, ids=lambda a: "-".join(k for k, v in a.items() if v) or "plain")
def test_xy_sent_back_is_what_the_controller_sends_for_that_position(axes):
    rng = np.random.default_rng(7)
    for a, b in rng.uniform(0, 1, size=(20, 2)):
        event = parse_osc("/1/xy1", (float(a), float(b)), **axes).event
        assert xy_for_controller((event.x, event.y), **axes) == pytest.approx((a, b), abs=1e-12)
        assert xy_messages((event.x, event.y), "/1/xy1", **axes) == {"/1/xy1": (round(a, 4), round(b, 4))}


def test_xy_goes_out_on_the_controllers_own_address():
    assert xy_messages((0.25, 0.75), "/1/xy1") == {"/1/xy1": (0.25, 0.75)}
    assert xy_messages((0.25, 0.75), "/nsynth/xy") == {"/nsynth/xy": (0.25, 0.75)}
    split = {"/nsynth/x": (0.25,), "/nsynth/y": (0.75,)}
    assert xy_messages((0.25, 0.75), "/nsynth/x") == split == xy_messages((0.25, 0.75), "/nsynth/y")
    # /nsynth/x and /nsynth/y are never swapped (as in parse_osc), only inverted
    assert xy_messages((0.25, 0.75), "/nsynth/x", swap_xy=True, invert_y=True) == {"/nsynth/x": (0.25,),
                                                                                   "/nsynth/y": (0.25,)}
    assert xy_messages((0.25, None), "/nsynth/x") == {"/nsynth/x": (0.25,)}
    assert xy_messages((0.123456, 1.0), "/nsynth/xy") == {"/nsynth/xy": (0.1235, 1.0)}


@pytest.mark.parametrize("peak, dbfs", [
    (0.0, PEAK_FLOOR_DBFS), (1e-9, PEAK_FLOOR_DBFS), (-0.5, PEAK_FLOOR_DBFS), (math.nan, PEAK_FLOOR_DBFS),
    (1.0, 0.0), (1.5, 0.0), (math.inf, 0.0), (0.5, -6.0), (0.1, -20.0), (np.float32(0.25), -12.0),
    (10 ** (-3.1 / 20), -3.0), (10 ** (-3.3 / 20), -3.5),
])
def test_peak_is_dbfs_in_half_db_steps_with_a_floor(peak, dbfs):
    value = peak_dbfs(peak)
    assert value == dbfs and isinstance(value, float) and str(value) != "-0.0"


def test_state_messages_and_their_osc_types():
    messages = state_messages(FeedbackState((0.2, 0.9), "keys", 3, 0.5))
    assert messages == {"/nsynth/xy": (0.2, 0.9), "/nsynth/preset": ("keys",), "/nsynth/voices": (3,),
                        "/nsynth/peak": (-6.0,)}
    datagrams = {address: encode_message(address, args) for address, args in messages.items()}
    tags = {address: dgram[dgram.index(b",") + 1:].split(b"\0")[0] for address, dgram in datagrams.items()}
    decoded = {address: tuple(OscMessage(dgram).params) for address, dgram in datagrams.items()}
    assert decoded["/nsynth/xy"] == pytest.approx((0.2, 0.9), abs=1e-7)  # float32 on the wire
    assert decoded["/nsynth/preset"] == ("keys",) and decoded["/nsynth/voices"] == (3,)
    assert decoded["/nsynth/peak"] == (-6.0,)
    assert tags == {"/nsynth/xy": b"ff", "/nsynth/preset": b"s", "/nsynth/voices": b"i", "/nsynth/peak": b"f"}


def test_engine_feedback_state_reads_the_engine_and_the_runners_peak():
    engine = Engine(AdditiveTestSynth(), "default")
    engine.post(NoteOn(60, 100))
    engine.post(ControlChange(CC_X_DEFAULT, 127))
    engine.render_hop()

    class Runner:
        output_peak = np.float32(0.5)

    state = engine_feedback_state(engine, Runner())
    assert state == FeedbackState(engine.xy, "default", 1, 0.5) and state.xy[0] == 1.0
    assert engine_feedback_state(engine).peak == 0.0


# ------------------------------------------------------------------------------ sending rules
def test_first_update_sends_everything_then_only_changes():
    state = State(xy=(0.25, 0.75), preset="keys", voices=2, peak=0.5)
    fb, sent, clock = feedback(state, TABLET, refresh_seconds=None)
    assert fb.tick() == 4
    assert sent.take() == [(("192.168.1.20", 9000), "/nsynth/xy", (0.25, 0.75)),
                           (("192.168.1.20", 9000), "/nsynth/preset", ("keys",)),
                           (("192.168.1.20", 9000), "/nsynth/voices", (2,)),
                           (("192.168.1.20", 9000), "/nsynth/peak", (-6.0,))]
    clock.now += 1.0
    assert fb.tick() == 0  # nothing changed
    state.set(voices=3, peak=0.50001)  # the peak rounds to the same 0.5 dB step
    clock.now += 1.0
    assert fb.tick() == 1 and sent.take() == [(("192.168.1.20", 9000), "/nsynth/voices", (3,))]
    state.set(xy=(0.25, 0.75000001))  # below the 4 decimals sent
    clock.now += 1.0
    assert fb.tick() == 0


def test_at_most_30_updates_a_second_whatever_the_state_does():
    state = State()
    fb, sent, clock = feedback(state, TABLET, refresh_seconds=None)
    updates = 0
    for ms in range(1000):  # the state changes every millisecond and tick() is called as often
        clock.now = 100.0 + ms / 1000
        state.set(xy=(ms / 1000, 0.5), voices=ms % 7)
        updates += fb.tick() > 0
    assert 29 <= updates <= 31 and fb.updates == updates
    assert sent.addresses().count("/nsynth/xy") == updates
    times = []
    fb2, sent2, clock2 = feedback(state, TABLET, refresh_seconds=None)
    for ms in range(100):
        clock2.now = 100.0 + ms / 1000
        state.set(xy=(ms / 1000, 0.25))
        if fb2.tick():
            times.append(clock2.now)
    assert min(np.diff(times)) >= 1 / 30 - 1e-6


def test_nothing_is_sent_before_anyone_spoke_and_reply_to_overrides_the_controller():
    state = State()
    fb, sent, clock = feedback(state, None)
    assert fb.tick() == 0 and sent.items == [] and fb.target is None
    fb, sent, clock = feedback(state, TABLET, reply_to=("10.0.0.5", 8001))
    assert fb.tick() == 4 and {target for target, _, _ in sent.items} == {("10.0.0.5", 8001)}
    fb, sent, clock = feedback(state, None, reply_to=("10.0.0.5", 8001))
    assert fb.tick() == 4 and fb.target == ("10.0.0.5", 8001)


def test_a_new_controller_gets_the_whole_state_and_its_own_xy_address():
    state = State(xy=(0.2, 0.3))
    current = [TABLET]
    sent = Sent()
    clock = FakeClock()
    fb = OscFeedback(state, lambda: current[0], clock=clock, send=sent, refresh_seconds=None, swap_xy=True)
    fb.tick()
    sent.take()
    current[0] = OscController("127.0.0.1", 57120, xy_address="/1/xy1")
    clock.now += 1.0
    assert fb.tick() == 4
    items = sent.take()
    assert {target for target, _, _ in items} == {("127.0.0.1", 57120)}
    assert items[0][1:] == ("/1/xy1", (0.3, 0.2))  # swapped back


def test_whole_state_is_sent_again_every_refresh_seconds():
    state = State()
    fb, sent, clock = feedback(state, TABLET, refresh_seconds=2.0)
    assert fb.tick() == 4
    clock.now += 1.0
    assert fb.tick() == 0
    clock.now += 1.0
    assert fb.tick() == 4


def test_no_xy_echo_while_the_controller_moves_xy_itself_then_midi_moves_are_sent():
    clock = FakeClock(50.0)
    state = State(xy=(0.5, 0.5))
    controller = [OscController("192.168.1.20", 9000)]
    sent = Sent()
    fb = OscFeedback(state, lambda: controller[0], clock=clock, send=sent, refresh_seconds=None,
                     xy_hold_seconds=0.25)
    fb.tick()
    sent.take()
    # the tablet drags: its message arrives, the engine follows one hop later
    controller[0] = OscController("192.168.1.20", 9000, "/1/xy1", (0.7, 0.1), xy_at=50.1)
    state.set(xy=(0.6, 0.3))  # an older position of the drag, still in the engine
    clock.now = 50.15
    assert fb.tick() == 0  # held: the pad is under the finger
    state.set(xy=(0.7, 0.1))
    clock.now = 50.5
    assert fb.tick() == 0  # the pad already shows where the engine is
    state.set(xy=(0.9, 0.1))  # a MIDI CC moves x
    clock.now = 50.6
    assert fb.tick() == 1 and sent.take() == [(("192.168.1.20", 9000), "/1/xy1", (0.9, 0.1))]


def test_send_errors_are_counted_rate_limited_and_retried(caplog):
    state = State()
    clock = FakeClock()
    failing = [True]
    sent = Sent()

    def send(datagram, target):
        if failing[0]:
            raise OSError(101, "Network is unreachable")
        sent(datagram, target)

    fb = OscFeedback(state, lambda: TABLET, clock=clock, send=send, refresh_seconds=None)
    with caplog.at_level(logging.WARNING, logger=FEEDBACK_LOGGER):
        for _ in range(30):  # one second of updates, all failing
            assert fb.tick() == 0
            clock.now += 1 / 30
    assert fb.send_errors == 30 * 4
    lines = [r for r in caplog.records if r.name == FEEDBACK_LOGGER]
    assert 1 <= len(lines) <= 2 and "unreachable" in lines[0].getMessage()
    failing[0] = False
    assert fb.tick() == 4  # nothing was marked as shown: everything goes out once the network is back


def test_a_failing_state_source_is_a_warning_not_a_crash(caplog):
    def broken():
        raise RuntimeError("engine gone")

    fb, sent, clock = feedback(broken, TABLET)
    with caplog.at_level(logging.WARNING, logger=FEEDBACK_LOGGER):
        assert fb.tick() == 0
    assert fb.state_errors == 1 and "engine gone" in caplog.text


def test_constructor_validates_its_numbers():
    for kwargs in ({"max_rate_hz": 0}, {"max_rate_hz": math.nan}, {"refresh_seconds": 0}, {"xy_hold_seconds": -1}):
        with pytest.raises(ValueError):
            OscFeedback(State(), **kwargs)


# ------------------------------------------------------------------------------ --osc-reply
@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:9000", ("127.0.0.1", 9000)),
    ("localhost:9000", ("127.0.0.1", 9000)),
    (" 192.168.1.20:8001 ", ("192.168.1.20", 8001)),
])
def test_reply_target_parses(text, expected):
    assert parse_reply_target(text) == expected


@pytest.mark.parametrize("text, fragment", [
    ("9000", "is not HOST:PORT"),
    (":9000", "is not HOST:PORT"),
    ("tablet:", "not a number in 1..65535"),
    ("tablet:abc", "not a number in 1..65535"),
    ("127.0.0.1:0", "must be in 1..65535"),
    ("127.0.0.1:70000", "must be in 1..65535"),
    ("[::1]:9000", "IPv6 is not supported"),
    ("1.2.3:9000", "not an IPv4 address"),
    ("300.1.1.1:9000", "not an IPv4 address"),
    ("bad host!:9000", "neither an IPv4 address nor a host name"),
])
def test_bad_reply_targets_are_clear_errors(text, fragment):
    with pytest.raises(OscReplyError) as error:
        parse_reply_target(text)
    assert fragment in str(error.value) and repr(text) in str(error.value)


def test_osc_reply_option_errors_name_the_value(capsys):
    assert build_parser().parse_args(["--osc-reply", "10.0.0.2:9000"]).osc_reply == ("10.0.0.2", 9000)
    assert build_parser().parse_args([]).osc_reply is None
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--osc-reply", "10.0.0.2"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--osc-reply" in err and "'10.0.0.2' is not HOST:PORT" in err


def test_osc_reply_errors_from_the_command_line():
    result = run_cli("--osc-reply", "tablet:99999")
    assert result.returncode == 2 and "--osc-reply" in result.stderr and "1..65535" in result.stderr
    result = run_cli("--no-osc", "--osc-reply", "127.0.0.1:9000")
    assert result.returncode == 2 and "--no-osc" in result.stderr and "--osc-reply" in result.stderr


def test_reply_to_the_servers_own_port_is_refused():
    server = OscServer(lambda batch: None, port=0)
    server.start()
    try:
        port = server.address[1]
        with pytest.raises(OscReplyError, match="own OSC port"):
            OscFeedback.for_server(server, State(), reply_to=("127.0.0.1", port))
        OscFeedback.for_server(server, State(), reply_to=("127.0.0.1", port + 1 if port < 65535 else port - 1))
    finally:
        server.stop()


# ------------------------------------------------------------------------------ the runner's peak meter
def test_runner_output_peak_follows_the_rendered_hops_and_falls_in_silence():
    engine = Engine(AdditiveTestSynth(), "default")
    runner = RealtimeRunner(engine, block_size=256, attack_cache=False)
    assert runner.output_peak == 0.0
    engine.post(NoteOn(60, 127))
    runner.pump()
    rendered = runner._ring[:runner._write_pos]
    assert runner.output_peak >= float(np.abs(rendered[-int(engine.nominal_hop_frames):]).max()) > 0.05
    assert runner.output_peak <= float(np.abs(rendered).max()) + 1e-9
    loud = runner.output_peak
    engine.post(AllSoundOff())
    hops = 0
    while hops < round(1.0 / engine.hop_seconds):  # one second of hops, consumed as the callback would
        runner._counters[C_READ] = runner._write_pos
        hops += runner.pump()
    fall_db = 20 * math.log10(loud / runner.output_peak)
    assert 17.0 < fall_db <= 20.5, fall_db  # a meter's release: 20 dB/s (the ramp's first hops still sound)


# ------------------------------------------------------------------------------ a real client: oscdump
def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OscDump:
    """``oscdump -L PORT`` in a subprocess; its lines arrive in a queue."""

    def __init__(self, port):
        if shutil.which("oscdump") is None:
            pytest.skip("oscdump not found: install the Debian package liblo-tools")
        self.port = port
        self.process = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:  # ready when it prints what we send
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                probe.sendto(encode_message("/probe", (1,)), ("127.0.0.1", port))
                if self.wait_for("/probe", timeout=0.2):
                    return
            raise AssertionError(f"oscdump on port {port} printed nothing in 10 s: {self.seen}")
        finally:
            probe.close()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, fragment, *, timeout):
        """The first line (after those already read) containing ``fragment``, or None after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            self.seen.append(line)
            if fragment in line:
                return line

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def move_xy_by_midi_cc(engine, x_value, y_value):
    """What the MIDI input does: CC 12 / CC 13 events, applied at the next hop (no OSC message)."""
    engine.post(ControlChange(CC_X_DEFAULT, x_value))
    engine.post(ControlChange(CC_Y_DEFAULT, y_value))
    engine.render_hop()


def test_oscdump_at_the_controllers_source_port_receives_the_xy_a_midi_cc_moved():
    """A TouchOSC-like controller sends /1/xy1 from its port P (swapped axes); later a MIDI CC moves
    XY; a real OSC client listening on P prints /1/xy1 with the new position, mapped back, within 1 s."""
    engine = Engine(AdditiveTestSynth(), "default")
    server = OscServer(engine.post, port=0, swap_xy=True)
    server.start()
    fb = OscFeedback.for_server(server, lambda: engine_feedback_state(engine))
    dump = None
    try:
        controller_port = free_udp_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tablet:
            tablet.bind(("127.0.0.1", controller_port))
            tablet.sendto(encode_message("/1/xy1", (0.25, 0.5)), server.address)
        deadline = time.monotonic() + 5.0
        while server.controller is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert server.controller == OscController("127.0.0.1", controller_port, "/1/xy1", (0.5, 0.25),
                                                  server.controller.xy_at)
        engine.render_hop()
        assert engine.xy == (0.5, 0.25)
        dump = OscDump(controller_port)  # the tablet listens where it sent from
        fb.start()
        assert dump.wait_for('/nsynth/preset s "default"', timeout=2.0) is not None, dump.seen
        move_xy_by_midi_cc(engine, 127, 0)
        moved_at = time.monotonic()
        assert engine.xy == (1.0, 0.0)
        line = dump.wait_for("/1/xy1 ff 0.000000 1.000000", timeout=1.0)  # (x, y) = (1, 0), swapped back
        assert line is not None, f"no /1/xy1 within 1 s of the MIDI move; oscdump printed {dump.seen}"
        assert time.monotonic() - moved_at < 1.0
        # the tablet's own position was never echoed back to it
        assert not [seen for seen in dump.seen if "/1/xy1 ff 0.250000 0.500000" in seen]
    finally:
        fb.stop()
        server.stop()
        if dump is not None:
            dump.close()


def test_oscdump_at_osc_reply_receives_the_state_and_each_midi_move():
    engine = Engine(AdditiveTestSynth(), "default")
    server = OscServer(engine.post, port=0)
    server.start()
    dump = OscDump(free_udp_port())
    fb = OscFeedback.for_server(server, lambda: engine_feedback_state(engine), reply_to=("127.0.0.1", dump.port))
    try:
        fb.start()
        for fragment in ("/nsynth/xy ff", '/nsynth/preset s "default"', "/nsynth/voices i 0", "/nsynth/peak f -96"):
            assert dump.wait_for(fragment, timeout=2.0) is not None, (fragment, dump.seen)
        for x_value, y_value in ((127, 127), (0, 64), (32, 96)):
            move_xy_by_midi_cc(engine, x_value, y_value)
            x, y = engine.xy
            expected = f"/nsynth/xy ff {round(x, 4):.6f} {round(y, 4):.6f}"
            assert dump.wait_for(expected, timeout=1.0) is not None, (expected, dump.seen)
        engine.post(SelectPreset("keys", preset=server.presets.get("keys")))
        engine.render_hop()
        assert dump.wait_for('/nsynth/preset s "keys"', timeout=1.0) is not None, dump.seen
        assert fb.send_errors == 0
    finally:
        fb.stop()
        server.stop()
        dump.close()


# ------------------------------------------------------------------------------ docs and the shipped session
REPO_ROOT = Path(__file__).resolve().parents[2]
FEEDBACK_ADDRESSES = {"/nsynth/xy", "/1/xy1", "/nsynth/x", "/nsynth/y", "/nsynth/preset", "/nsynth/voices",
                      "/nsynth/peak"}


def test_docs_feedback_section_lists_every_address_sent():
    doc = (REPO_ROOT / "docs" / "osc.md").read_text()
    section = doc[doc.index("## Feedback"):doc.index("## Bad messages")]
    sent = set(state_messages(FeedbackState((0.1, 0.2), "keys", 1, 0.1)))
    for xy_address in ("/1/xy1", "/nsynth/x"):
        sent |= set(xy_messages((0.1, 0.2), xy_address))
    assert sent == FEEDBACK_ADDRESSES
    for address in sent:
        assert f"`{address}`" in section
    assert "30 times a second" in section and "dBFS" in section and "9000" in section


def _widgets(node):
    for widget in node.get("widgets", []) + node.get("tabs", []):
        yield widget
        yield from _widgets(widget)


def test_open_stage_control_session_speaks_our_address_space():
    path = REPO_ROOT / "examples" / "nsynth_live.open-stage-control.json"
    session = json.loads(path.read_text())
    assert session["type"] == "session" and session["createdWith"] == "Open Stage Control"
    assert session["content"]["type"] == "root"
    widgets = list(_widgets(session["content"]))
    ids = [w["id"] for w in widgets]
    assert len(ids) == len(set(ids))
    known = {entry.address for entry in OSC_ADDRESS_SPACE} | FEEDBACK_ADDRESSES
    by_address = {w["address"]: w for w in widgets if not w.get("bypass")}
    assert set(by_address) <= known, set(by_address) - known
    assert by_address["/nsynth/xy"]["type"] == "xy"
    assert by_address["/nsynth/xy"]["rangeX"] == by_address["/nsynth/xy"]["rangeY"] == {"min": 0, "max": 1}
    assert sorted(by_address["/nsynth/preset"]["values"]) == list_presets()
    displays = {w["address"] for w in widgets}
    assert {"/nsynth/voices", "/nsynth/peak"} <= displays
    for widget in widgets:  # each message it sends is accepted by the instrument
        if widget["type"] == "keyboard":
            for on_off in (widget["on"], widget["off"]):
                assert parse_osc(widget["address"], (widget["start"], on_off)).reason is None
        elif widget["type"] == "button":
            assert widget["on"] is None and widget["mode"] == "tap"
            assert parse_osc(widget["address"], ()).reason is None
    assert "nsynth_live.open-stage-control.json" in (REPO_ROOT / "examples" / "OSC_CONTROLLERS.md").read_text()


# ------------------------------------------------------------------------------ the app's wiring
class FakeDevice:
    default_sample_rate = 48000.0
    label = "fake device"


def live_session(*argv):
    """A LiveSession whose inputs open for real (OSC server and feedback), with the test synth
    instead of the model and no audio device (the runner is pumped by hand)."""
    from types import SimpleNamespace

    from nsynth_live.app import LiveSession

    session = LiveSession(SimpleNamespace(args=build_parser().parse_args(["--no-midi", *argv])), FakeDevice())
    session.engine = Engine(AdditiveTestSynth(), "default")
    session.runner = RealtimeRunner(session.engine, block_size=256, attack_cache=False)
    return session


def test_live_session_starts_the_feedback_with_the_osc_server_and_stops_it():
    dump = OscDump(free_udp_port())
    session = live_session("--osc-port", str(free_udp_port()), "--osc-reply", f"127.0.0.1:{dump.port}")
    try:
        session._open_inputs()
        assert session.osc_feedback is not None and session.osc_feedback.reply_to == ("127.0.0.1", dump.port)
        session.runner.post(ControlChange(CC_X_DEFAULT, 0))  # through the callback side, as MIDI goes
        session.runner.audio_callback(np.zeros((256, 2), np.float32), 256, None, 0)
        session.runner.pump()
        assert session.engine.xy[0] == 0.0
        assert dump.wait_for("/nsynth/xy ff 0.000000 0.500000", timeout=1.0) is not None, dump.seen
    finally:
        session.close()
        dump.close()
    assert session.osc_feedback._thread is None and session.osc._server is None


def test_live_session_without_osc_has_no_feedback_and_refuses_its_own_port():
    session = live_session("--no-osc")
    session._open_inputs()
    assert session.osc is None and session.osc_feedback is None
    session.close()
    port = free_udp_port()
    session = live_session("--osc-port", str(port), "--osc-reply", f"127.0.0.1:{port}")
    try:
        with pytest.raises(AppError, match="own OSC port"):
            session._open_inputs()
    finally:
        session.close()
    assert session.osc._server is None  # the server that did start was stopped
