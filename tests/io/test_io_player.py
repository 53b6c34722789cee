"""EventPlayer posts events in time order at their times."""

import time

from nsynth_live.io.player import EventPlayer


def test_events_posted_in_order_at_their_times():
    posted = []
    start = time.monotonic()
    events = [(0.12, "c"), (0.0, "a"), (0.06, "b")]
    player = EventPlayer(events, lambda e: posted.append((e, time.monotonic() - start)))
    player.start()
    assert player.finished.wait(2.0)
    assert [e for e, _ in posted] == ["a", "b", "c"]
    for (_, at), expected in zip(posted, [0.0, 0.06, 0.12]):
        assert expected - 0.005 <= at <= expected + 0.2
    assert player.events_posted == 3
    assert player.duration_seconds == 0.12


def test_stop_ends_playback_early():
    posted = []
    player = EventPlayer([(0.0, 1), (10.0, 2)], posted.append)
    player.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    player.stop()
    assert time.monotonic() - t0 < 0.5
    assert posted == [1]
    assert player.finished.is_set()
