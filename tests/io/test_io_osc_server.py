"""The OSC server over real UDP on 127.0.0.1: order, coalescing, presets parsed on its thread,
rejections counted by reason, rate-limited warnings, malformed packets, fuzz, bind errors."""

import logging
import math
import os
import shutil
import socket
import threading
import time
import tomllib

import numpy as np
import pytest
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

from nsynth_live.engine.events import EventBatch, NoteOff, NoteOn, SelectPreset, SetXY
from nsynth_live.io.osc_server import OscController, OscServer, OscServerError, RateLimitedWarnings
from nsynth_live.presets import DEFAULT_PRESETS_DIR, Preset

SERVER_LOGGER = "nsynth_live.io.osc_server"


def toy_router(address, args):
    """A router with the shape of route_osc: '/xy' with two floats -> ('xy', x, y), else None."""
    if address == "/xy" and len(args) == 2 and all(isinstance(a, float) and math.isfinite(a) for a in args):
        return ("xy", args[0], args[1])
    return None


class EngineQueue:
    """Stands for the engine: a queue the server posts to, drained once per 'hop' by take()."""

    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def post(self, item):
        with self.lock:
            self.items.append(item)

    def waiting(self):
        with self.lock:
            return len(self.items)

    def take(self):
        """Like Engine._drain_events with the batch hook: each EventBatch taken once, in order."""
        with self.lock:
            items, self.items = self.items, []
        events = []
        for item in items:
            events.extend(item.take() if isinstance(item, EventBatch) else (item,))
        return events


def wait_quiet(server, *, at_least=0, quiet_seconds=0.05, timeout=10.0):
    """Wait until the server has handled ``at_least`` datagrams and then nothing for a while."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        seen = server.messages_received + server.packets_malformed
        if seen != last:
            last, since = seen, time.monotonic()
        elif seen >= at_least and time.monotonic() - since >= quiet_seconds:
            return seen
        time.sleep(0.005)
    raise AssertionError(f"OSC server still busy or short of {at_least} datagrams after {timeout} s")


def send_until_taken(client, server, queue, address, args, *, tries=20):
    """Send one message until a take holds it (a flood may have filled the kernel's socket buffer)."""
    for _ in range(tries):
        before = server.messages_received + server.packets_malformed
        client.send_message(address, args)
        try:
            wait_quiet(server, at_least=before + 1, timeout=1.0)
        except AssertionError:
            continue  # lost in the kernel: send again
        taken = queue.take()
        if taken:
            return taken
    raise AssertionError(f"{address} {args} never reached the engine's queue in {tries} tries")


@pytest.fixture
def served():
    queue = EngineQueue()
    server = OscServer(queue.post, port=0, router=toy_router, max_events_per_hop=256)
    server.start()
    yield server, queue
    server.stop()


@pytest.fixture
def presets_dir(tmp_path):
    folder = tmp_path / "presets"
    shutil.copytree(DEFAULT_PRESETS_DIR, folder)
    return folder


def test_binds_loopback_by_default(served):
    server, _ = served
    host, port = server.address
    assert host == "127.0.0.1" and port > 0


def test_messages_arrive_in_order_on_one_thread(served):
    server, queue = served
    client = SimpleUDPClient(*server.address)
    for i in range(200):
        client.send_message("/xy", [i / 200.0, 0.5])
        if i % 50 == 49:
            wait_quiet(server, at_least=i + 1)
    wait_quiet(server, at_least=200)
    events = queue.take()
    assert [e[1] for e in events] == pytest.approx([i / 200.0 for i in range(200)], rel=1e-6)


def test_an_xy_flood_over_udp_leaves_one_event_queued_and_the_last_xy_wins():
    queue = EngineQueue()
    server = OscServer(queue.post, port=0)
    server.start()
    try:
        client = SimpleUDPClient(*server.address)
        for i in range(2000):
            client.send_message("/nsynth/xy" if i % 2 else "/1/xy1", [i / 2000.0, 0.25])
        wait_quiet(server, at_least=100)
        assert queue.waiting() <= 1  # the engine's queue: one batch, whatever the flood
        flood = queue.take()
        assert len(flood) <= 1 and all(isinstance(e, SetXY) for e in flood)
        final = send_until_taken(client, server, queue, "/nsynth/xy", [0.125, 0.875])
    finally:
        server.stop()
    assert final == [SetXY(0.125, 0.875)]  # newest position only
    stats = server.stats()
    assert stats["events_coalesced"] >= stats["messages_received"] - 3
    assert stats["messages_rejected"] == 0 and stats["batches_posted"] <= 3


def test_xy_coalesces_per_hop_while_an_engine_thread_takes():
    """An 'engine' taking every 16 ms never sees more than one batch, nor more than one XY per take."""
    queue = EngineQueue()
    server = OscServer(queue.post, port=0)
    server.start()
    stop = threading.Event()
    per_take, waiting = [], []

    def engine():
        while not stop.is_set():
            waiting.append(queue.waiting())
            per_take.append(len(queue.take()))
            stop.wait(0.016)

    thread = threading.Thread(target=engine)
    thread.start()
    try:
        client = SimpleUDPClient(*server.address)
        for i in range(2000):
            client.send_message("/nsynth/xy", [i / 2000.0, 0.5])
        wait_quiet(server, at_least=100)
    finally:
        stop.set()
        thread.join()
        server.stop()
    assert max(waiting) <= 1 and max(per_take) <= 1


def test_a_preset_flood_is_parsed_on_the_server_thread_once_per_file_version(presets_dir, monkeypatch):
    parses = []
    real_load = tomllib.load

    def spy(f, *args, **kwargs):
        parses.append((os.path.basename(f.name), threading.current_thread().name))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(tomllib, "load", spy)
    queue = EngineQueue()
    server = OscServer(queue.post, port=0, presets_dir=presets_dir)
    server.start()
    try:
        client = SimpleUDPClient(*server.address)
        names = ["keys", "synth", "no_such_preset", "../default", "keys", "plucked"]
        for i in range(600):
            client.send_message("/nsynth/preset", [names[i % len(names)]])
            if i % 100 == 99:  # in bursts the kernel's socket buffer holds: every message counts
                wait_quiet(server, at_least=i + 1)
        client.send_message("/nsynth/preset", [3])  # not a string
        wait_quiet(server, at_least=601)
        assert queue.waiting() <= 1
        queue.take()
        final = send_until_taken(client, server, queue, "/nsynth/preset", ["synth"])
        # the engine side: a ready Preset, and nothing parsed there
        parsed_before = len(parses)
        assert [type(e) for e in final] == [SelectPreset]
        assert isinstance(final[0].preset, Preset) and final[0].preset.name == "synth"
        assert len(parses) == parsed_before
        # each file parsed once, on the server thread (an unknown name's message lists the presets
        # that load: every file is read once for that too)
        names_parsed = [name for name, _ in parses]
        assert {"keys.toml", "plucked.toml", "synth.toml"} <= set(names_parsed)
        assert len(names_parsed) == len(set(names_parsed))
        assert {thread for _, thread in parses} == {"nsynth-osc"}
        # a new version of keys.toml is parsed once more
        keys = presets_dir / "keys.toml"
        keys.write_text(keys.read_text().replace("release_seconds = 0.4", "release_seconds = 0.9"))
        stat = keys.stat()
        os.utime(keys, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
        for _ in range(50):
            client.send_message("/nsynth/preset", ["keys"])
        final = send_until_taken(client, server, queue, "/nsynth/preset", ["keys"])
    finally:
        server.stop()
    assert final[0].preset.release_seconds == 0.9
    assert [name for name, _ in parses].count("keys.toml") == 2 and len(parses) == len(names_parsed) + 1
    reasons = server.rejected_by_reason
    assert reasons == {"preset": 200, "arg_type": 1}  # unknown or refused names: rejected, never queued


def test_malformed_packets_are_counted_and_server_keeps_serving(served, caplog):
    server, queue = served
    host, port = server.address
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = SimpleUDPClient(host, port)
    with caplog.at_level(logging.WARNING, logger=SERVER_LOGGER):
        raw.sendto(b"\x00\xffnot osc at all", (host, port))  # not OSC
        raw.sendto(b"/xy\x00,ff\x00\x00\x00", (host, port))  # type tags promise two floats, no data
        client.send_message("/xy", ["left", "up"])  # wrong types: router rejects
        client.send_message("/xy", [float("nan"), 0.5])  # NaN: router rejects
        client.send_message("/nowhere", [1])  # unknown address
        client.send_message("/xy", [0.25, 0.75])  # a good one after all the bad ones
        wait_quiet(server, at_least=6)
    raw.close()
    assert queue.take() == [("xy", 0.25, 0.75)]
    assert server.packets_malformed == 2
    assert server.messages_rejected == 3 and server.rejected_by_reason == {"router": 3}
    assert caplog.text.count("malformed OSC packet") == 1  # the second within the same second: counted


def test_real_router_over_udp_rejects_counts_clamps_and_keeps_playing(caplog):
    """The default router (parse_osc): bad messages are counted by reason, good ones still arrive."""
    queue = EngineQueue()
    server = OscServer(queue.post, port=0)
    server.start()
    try:
        client = SimpleUDPClient(*server.address)
        with caplog.at_level(logging.WARNING):
            client.send_message("/nsynth/xy", ["left", "up"])
            client.send_message("/nsynth/xy", [float("nan"), 0.5])
            client.send_message("/nsynth/note_on", [60])
            client.send_message("/nsynth/all_notes_off", [1])  # docs/osc.md: no arguments
            client.send_message("/1/xy1", [1.5, 0.25])  # out of range: clamped, with a warning
            client.send_message("/nsynth/note_on", [60, 100])
            client.send_message("/nsynth/note_off", [60])
            wait_quiet(server, at_least=7)
    finally:
        server.stop()
    assert queue.take() == [SetXY(1.0, 0.25), NoteOn(60, 100), NoteOff(60)]
    assert server.messages_rejected == 4
    assert server.rejected_by_reason == {"arg_type": 1, "arg_value": 1, "arg_count": 2}
    assert "'left'" in caplog.text and "clamped" in caplog.text
    assert "1 more arg_count warnings dropped" in caplog.text  # /nsynth/all_notes_off 1, within the second
    # the names the app's stats line uses
    assert server.messages_received == 7 and server.messages_rejected + server.packets_malformed == 4


def test_axis_options_apply_and_rejections_are_rate_limited(caplog):
    queue = EngineQueue()
    server = OscServer(queue.post, swap_xy=True, invert_x=False, invert_y=False, clock=lambda: 0.0)
    with caplog.at_level(logging.WARNING):
        server.handle_message("/1/xy1", [0.2, 0.9])
        for _ in range(100):
            server.handle_message("/nsynth/xy", ["a", "b"])
    assert queue.take() == [SetXY(0.9, 0.2)]
    assert server.rejected_by_reason == {"arg_type": 100}
    assert len(caplog.records) == 1  # not one line per bad message


def test_too_many_events_in_one_hop_are_dropped_and_counted():
    queue = EngineQueue()
    server = OscServer(queue.post, max_events_per_hop=4, clock=lambda: 0.0)
    for pitch in range(60, 70):
        server.handle_message("/nsynth/note_on", [pitch, 100])
    server.handle_message("/nsynth/note_off", [69])  # releases are kept past the limit
    assert queue.take() == [NoteOn(p, 100) for p in range(60, 64)] + [NoteOff(69)]
    assert server.rejected_by_reason == {"queue_full": 6} and server.stats()["events_dropped"] == 6


def test_warnings_are_one_line_per_second_per_kind_then_the_count_dropped(caplog):
    now = [100.0]
    server = OscServer(lambda item: None, router=toy_router, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger=SERVER_LOGGER):
        for _ in range(250):
            server.handle_datagram(b"garbage")
        for _ in range(30):
            server.handle_message("/nsynth/xy", [0.5])  # toy router: 'router' kind, debug only
        assert len(caplog.records) == 1
        now[0] += 1.0
        server.handle_datagram(b"garbage")
        assert len(caplog.records) == 2 and "249 more malformed warnings dropped" in caplog.records[-1].getMessage()
        now[0] += 0.5
        for _ in range(7):
            server.handle_datagram(b"garbage")
        server.warnings.flush()  # stop() does this
    assert len(caplog.records) == 3 and "7 more malformed warnings dropped" in caplog.records[-1].getMessage()
    assert server.packets_malformed == 258


def test_rate_limited_warnings_validate_the_interval():
    with pytest.raises(ValueError, match="> 0 s"):
        RateLimitedWarnings(logging.getLogger("x"), interval_seconds=0)


def _random_datagram(rng):
    """A datagram of a fuzzing controller: known and random addresses, any types and counts, garbage."""
    kind = rng.integers(6)
    if kind == 0:
        return rng.bytes(int(rng.integers(0, 64)))
    addresses = ["/nsynth/xy", "/1/xy1", "/nsynth/x", "/nsynth/y", "/nsynth/note_on", "/nsynth/note_off",
                 "/nsynth/sustain", "/nsynth/preset", "/nsynth/all_notes_off", "/nsynth/all_sound_off",
                 "/1/xy1/z", "/nsynth", "/", "/nsynth/xy/extra", "/" + rng.bytes(6).hex()]
    values = [0, 1, 60, 127, 128, -1, 2**31 - 1, 0.5, 1.5, -0.25, 60.0, 60.5, float("nan"), float("inf"),
              "", "keys", "default", "no_such", "../default", "x" * 200, b"\x00\x01", True, False, None]
    builder = OscMessageBuilder(addresses[rng.integers(len(addresses))])
    for _ in range(int(rng.integers(0, 5))):
        builder.add_arg(values[rng.integers(len(values))])
    data = builder.build().dgram
    if kind == 1:
        return data[: int(rng.integers(0, len(data) + 1))]  # truncated
    if kind == 2:
        bundle = OscBundleBuilder(0)
        bundle.add_content(builder.build())
        return bundle.build().dgram
    return data


def test_fuzz_never_raises_stays_bounded_and_logs_a_bounded_number_of_lines(presets_dir, caplog):
    rng = np.random.default_rng(1234)
    queue = EngineQueue()
    server = OscServer(queue.post, presets_dir=presets_dir, max_events_per_hop=16, clock=lambda: 0.0)
    datagrams = [_random_datagram(rng) for _ in range(4000)]
    with caplog.at_level(logging.DEBUG, logger=SERVER_LOGGER):
        for data in datagrams:
            server.handle_datagram(data)
        server.warnings.flush()
    stats = server.stats()
    assert stats["messages_received"] + stats["packets_malformed"] >= 3000
    assert stats["messages_received"] == (stats["messages_rejected"] + stats["messages_ignored"]
                                          + stats["events_posted"])
    assert sum(stats["rejected_by_reason"].values()) == stats["messages_rejected"]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    kinds = {"malformed", "clamped", "arg_count", "arg_type", "arg_value", "preset", "queue_full", "server"}
    assert len(warnings) <= 2 * len(kinds)  # one line per kind, and its 'N more dropped' line
    assert queue.waiting() <= 1
    taken = queue.take()
    assert len(taken) <= 16 + 133
    assert all(e.preset is not None for e in taken if isinstance(e, SelectPreset))


def test_fuzz_over_udp_keeps_the_server_serving(presets_dir):
    rng = np.random.default_rng(99)
    queue = EngineQueue()
    server = OscServer(queue.post, port=0, presets_dir=presets_dir)
    server.start()
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(500):
            raw.sendto(_random_datagram(rng) or b"\x00", server.address)
        wait_quiet(server, at_least=50)
        queue.take()
        final = send_until_taken(SimpleUDPClient(*server.address), server, queue, "/nsynth/note_on", [61, 90])
    finally:
        raw.close()
        server.stop()
    assert final[-1] == NoteOn(61, 90)


def test_bundles_apply_on_arrival_even_with_future_timetags(served):
    server, queue = served
    bundle = OscBundleBuilder(time.time() + 60.0)  # one minute in the future
    for x in (0.1, 0.2):
        msg = OscMessageBuilder("/xy")
        msg.add_arg(x)
        msg.add_arg(0.0)
        bundle.add_content(msg.build())
    SimpleUDPClient(*server.address).send(bundle.build())
    wait_quiet(server, at_least=2, timeout=2.0)
    assert [e[1] for e in queue.take()] == pytest.approx([0.1, 0.2])


def test_port_in_use_gives_the_fix(served):
    server, _ = served
    other = OscServer(lambda e: None, port=server.address[1], router=toy_router)
    with pytest.raises(OscServerError, match="--osc-port"):
        other.start()


def test_port_out_of_range_is_refused():
    with pytest.raises(ValueError, match="0..65535"):
        OscServer(lambda e: None, port=70000, router=toy_router)


def test_stop_is_idempotent_and_frees_the_port():
    server = OscServer(lambda e: None, port=0, router=toy_router)
    server.start()
    port = server.address[1]
    server.stop()
    server.stop()
    again = OscServer(lambda e: None, port=port, router=toy_router)
    again.start()
    again.stop()


# -- the controller the feedback replies to (issue 16 item 5) ----------------------------------
def test_the_sender_of_an_accepted_message_becomes_the_controller_with_its_xy_address():
    queue = EngineQueue()
    server = OscServer(queue.post, port=0, swap_xy=True, invert_y=True, clock=lambda: 12.5)
    server.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tablet:
            tablet.bind(("127.0.0.1", 0))
            tablet_port = tablet.getsockname()[1]
            message = OscMessageBuilder(address="/1/xy1")
            message.add_arg(0.25)
            message.add_arg(0.5)
            tablet.sendto(message.build().dgram, server.address)
            wait_quiet(server, at_least=1)
        assert server.swap_xy and server.invert_y and not server.invert_x
        # (0.25, 0.5) swapped, then y inverted: the engine's (0.5, 0.75)
        assert server.controller == OscController("127.0.0.1", tablet_port, "/1/xy1", (0.5, 0.75), 12.5)
        client = SimpleUDPClient(*server.address)  # another controller, another port
        client.send_message("/nsynth/all_notes_off", [1])  # rejected (arg_count): not a controller
        wait_quiet(server, at_least=2)
        assert server.controller.port == tablet_port
        client.send_message("/no/such/address", [1])
        wait_quiet(server, at_least=3)
        assert server.controller.port == tablet_port
        client.send_message("/nsynth/note_off", [60])
        wait_quiet(server, at_least=4)
        other = server.controller
        assert other.port != tablet_port and other.xy_address == "/nsynth/xy" and other.xy is None
    finally:
        server.stop()


def test_controller_xy_merges_x_and_y_messages_and_senders_are_remembered_apart():
    server = OscServer(lambda batch: None, port=0, clock=lambda: 3.0)
    server.handle_message("/nsynth/x", [0.2], ("10.0.0.2", 9000))
    assert server.controller == OscController("10.0.0.2", 9000, "/nsynth/x", (0.2, None), 3.0)
    server.handle_message("/nsynth/y", [0.7], ("10.0.0.2", 9000))
    assert server.controller == OscController("10.0.0.2", 9000, "/nsynth/y", (0.2, 0.7), 3.0)
    server.handle_message("/nsynth/xy", [0.1, 0.1], ("10.0.0.3", 8080))
    server.handle_message("/nsynth/preset", ["no_such_preset"], ("10.0.0.2", 9000))  # accepted address
    assert server.controller == OscController("10.0.0.2", 9000, "/nsynth/y", (0.2, 0.7), 3.0)
    server.handle_message("/1/xy1/z", [1.0], ("10.0.0.3", 8080))  # ignored by design, still a controller
    assert server.controller == OscController("10.0.0.3", 8080, "/nsynth/xy", (0.1, 0.1), 3.0)
    server.handle_message("/nsynth/xy", [0.3, 0.4])  # no sender (direct call): nothing recorded
    assert server.controller.xy == (0.1, 0.1)
    for port in range(1, 200):
        server.handle_message("/nsynth/note_off", [60], ("10.0.0.4", port))
    assert len(server._controllers) <= 64
