"""The OSC server over real UDP on 127.0.0.1: routing, order, malformed packets, bind errors."""

import logging
import math
import socket
import threading
import time

import pytest
from pythonosc.udp_client import SimpleUDPClient

from nsynth_live.io.osc_server import OscServer, OscServerError


def toy_router(address, args):
    """A router with the shape of route_osc: '/xy' with two floats -> ('xy', x, y), else None."""
    if address == "/xy" and len(args) == 2 and all(isinstance(a, float) and math.isfinite(a) for a in args):
        return ("xy", args[0], args[1])
    return None


class Collector:
    def __init__(self):
        self.events = []
        self.changed = threading.Condition()

    def post(self, event):
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def wait_for(self, count, timeout=5.0):
        with self.changed:
            return self.changed.wait_for(lambda: len(self.events) >= count, timeout=timeout)


@pytest.fixture
def served():
    collector = Collector()
    server = OscServer(collector.post, port=0, router=toy_router)
    server.start()
    yield server, collector
    server.stop()


def test_binds_loopback_by_default(served):
    server, _ = served
    host, port = server.address
    assert host == "127.0.0.1" and port > 0


def test_messages_arrive_in_order_on_one_thread(served):
    server, collector = served
    client = SimpleUDPClient(*server.address)
    for i in range(200):
        client.send_message("/xy", [i / 200.0, 0.5])
    assert collector.wait_for(200)
    assert [e[1] for e in collector.events] == pytest.approx([i / 200.0 for i in range(200)], rel=1e-6)


def test_malformed_packets_are_counted_and_server_keeps_serving(served, caplog):
    server, collector = served
    host, port = server.address
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = SimpleUDPClient(host, port)
    with caplog.at_level(logging.WARNING, logger="nsynth_live.io.osc_server"):
        raw.sendto(b"\x00\xffnot osc at all", (host, port))  # not OSC
        raw.sendto(b"/xy\x00,ff\x00\x00\x00", (host, port))  # type tags promise two floats, no data
        client.send_message("/xy", ["left", "up"])  # wrong types: router rejects
        client.send_message("/xy", [float("nan"), 0.5])  # NaN: router rejects
        client.send_message("/nowhere", [1])  # unknown address
        client.send_message("/xy", [0.25, 0.75])  # a good one after all the bad ones
        assert collector.wait_for(1)
    raw.close()
    assert collector.events == [("xy", 0.25, 0.75)]
    assert server.packets_malformed == 2
    assert server.messages_rejected == 3
    assert caplog.text.count("malformed OSC packet") == 2


def test_real_router_over_udp_warns_clamps_and_keeps_playing(caplog):
    """The default router (route_osc): bad messages are logged, the next good one still arrives."""
    from nsynth_live.engine.events import NoteOff, NoteOn, SetXY

    collector = Collector()
    server = OscServer(collector.post, port=0)
    server.start()
    try:
        client = SimpleUDPClient(*server.address)
        with caplog.at_level(logging.WARNING):
            client.send_message("/nsynth/xy", ["left", "up"])
            client.send_message("/nsynth/xy", [float("nan"), 0.5])
            client.send_message("/nsynth/note_on", [60])
            client.send_message("/1/xy1", [1.5, 0.25])  # out of range: clamped, with a warning
            client.send_message("/nsynth/note_on", [60, 100])
            client.send_message("/nsynth/note_off", [60])
            assert collector.wait_for(3)
    finally:
        server.stop()
    assert collector.events == [SetXY(1.0, 0.25), NoteOn(60, 100), NoteOff(60)]
    assert server.messages_rejected == 3
    assert "'left'" in caplog.text and "clamped" in caplog.text


def test_warnings_are_rate_limited(caplog):
    server = OscServer(lambda e: None, port=0, router=toy_router)
    with caplog.at_level(logging.WARNING, logger="nsynth_live.io.osc_server"):
        for _ in range(250):
            server.handle_datagram(b"garbage")
    assert server.packets_malformed == 250
    assert 5 <= len(caplog.records) <= 8


def test_bundles_apply_on_arrival_even_with_future_timetags(served):
    from pythonosc.osc_bundle_builder import OscBundleBuilder
    from pythonosc.osc_message_builder import OscMessageBuilder

    server, collector = served
    bundle = OscBundleBuilder(time.time() + 60.0)  # one minute in the future
    for x in (0.1, 0.2):
        msg = OscMessageBuilder("/xy")
        msg.add_arg(x)
        msg.add_arg(0.0)
        bundle.add_content(msg.build())
    SimpleUDPClient(*server.address).send(bundle.build())
    assert collector.wait_for(2, timeout=2.0)
    assert [e[1] for e in collector.events] == pytest.approx([0.1, 0.2])


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
