"""OscOutbox: XY floods coalesce, one batch waits in the engine's queue, the per-hop limit holds."""

import threading

import pytest

from nsynth_live.engine.events import (
    AllNotesOff, ControlChange, EventBatch, NoteOff, NoteOn, SelectPreset, SetX, SetXY, SetY,
)
from nsynth_live.engine.osc import COALESCED, DROPPED, QUEUED, OscOutbox


class Queue:
    """Stands for the engine's deque: what was posted."""

    def __init__(self):
        self.items = []

    def post(self, item):
        self.items.append(item)

    def take_all(self):
        """Like Engine._drain_events with the batch hook: each batch is taken once, in order."""
        items, self.items = self.items, []
        out = []
        for item in items:
            out.extend(item.take() if isinstance(item, EventBatch) else (item,))
        return out


def test_an_xy_flood_is_one_batch_holding_the_newest_position():
    queue = Queue()
    outbox = OscOutbox(queue.post)
    outcomes = [outbox.put(SetXY(i / 2000, 0.25)) for i in range(2000)]
    assert outcomes[0] == QUEUED and set(outcomes[1:]) == {COALESCED}
    assert len(queue.items) == 1 and isinstance(queue.items[0], EventBatch)
    assert queue.take_all() == [SetXY(1999 / 2000, 0.25)]
    assert (outbox.events_coalesced, outbox.batches_posted, len(outbox)) == (1999, 1, 0)


@pytest.mark.parametrize("events, merged", [
    ([SetX(0.1), SetY(0.2)], SetXY(0.1, 0.2)),
    ([SetXY(0.1, 0.2), SetX(0.3)], SetXY(0.3, 0.2)),
    ([SetY(0.4), SetY(0.5)], SetY(0.5)),
    ([SetX(0.4), SetX(0.6)], SetX(0.6)),
    ([SetX(0.1), SetXY(0.7, 0.8)], SetXY(0.7, 0.8)),
])
def test_position_events_merge_like_applying_them_in_order(events, merged):
    queue = Queue()
    outbox = OscOutbox(queue.post)
    for event in events:
        outbox.put(event)
    assert queue.take_all() == [merged]


def test_the_newest_preset_wins_and_notes_keep_their_order():
    queue = Queue()
    outbox = OscOutbox(queue.post)
    for event in (NoteOn(60, 100), SelectPreset("keys"), SetX(0.2), NoteOff(60), SelectPreset("synth"),
                  SetX(0.9)):
        outbox.put(event)
    assert queue.take_all() == [NoteOn(60, 100), SelectPreset("synth"), SetX(0.9), NoteOff(60)]


def test_a_new_batch_is_posted_only_after_the_engine_took_the_last():
    queue = Queue()
    outbox = OscOutbox(queue.post)
    outbox.put(NoteOn(60, 100))
    outbox.put(NoteOn(62, 100))
    assert len(queue.items) == 1
    assert queue.take_all() == [NoteOn(60, 100), NoteOn(62, 100)]
    outbox.put(NoteOff(60))
    assert len(queue.items) == 1 and queue.take_all() == [NoteOff(60)]
    assert queue.take_all() == [] and outbox.batches_posted == 2


def test_past_the_limit_note_ons_drop_but_releases_are_kept_once_each():
    queue = Queue()
    outbox = OscOutbox(queue.post, max_events_per_hop=4)
    for pitch in range(4):
        assert outbox.put(NoteOn(60 + pitch, 100)) == QUEUED
    assert outbox.put(NoteOn(70, 100)) == DROPPED
    assert outbox.put(SetXY(0.5, 0.5)) == QUEUED  # the position is never dropped
    assert outbox.put(SelectPreset("keys")) == QUEUED  # nor the preset
    for _ in range(3):  # a flood of note-offs of one key, a pedal going up and down
        outbox.put(NoteOff(60))
        outbox.put(ControlChange(64, 127))
        outbox.put(ControlChange(64, 0))
    outbox.put(AllNotesOff())
    taken = queue.take_all()
    assert taken == [NoteOn(60, 100), NoteOn(61, 100), NoteOn(62, 100), NoteOn(63, 100), SetXY(0.5, 0.5),
                     SelectPreset("keys"), NoteOff(60), ControlChange(64, 0), AllNotesOff()]
    assert outbox.events_dropped == 1


def test_a_take_is_bounded_whatever_arrives():
    queue = Queue()
    outbox = OscOutbox(queue.post, max_events_per_hop=8)
    for i in range(20_000):
        pitch = i % 128
        outbox.put([NoteOn(pitch, 1 + i % 127), NoteOff(pitch), SetX((i % 100) / 100), AllNotesOff(),
                    ControlChange(64, i % 128), SelectPreset(f"p{i % 7}")][i % 6])
    assert len(queue.items) == 1
    assert len(queue.take_all()) <= 8 + 2 + 128 + 1 + 2


def test_max_events_per_hop_is_validated():
    with pytest.raises(ValueError, match=">= 1"):
        OscOutbox(lambda batch: None, max_events_per_hop=0)


def test_producer_and_consumer_threads_never_lose_the_newest_position():
    queue_lock = threading.Lock()
    queue = Queue()

    def post(item):
        with queue_lock:
            queue.post(item)

    outbox = OscOutbox(post)
    stop = threading.Event()
    applied = []
    max_waiting = [0]

    def consumer():  # the engine: a hop every ~0.2 ms
        while not stop.is_set() or queue.items:
            with queue_lock:
                max_waiting[0] = max(max_waiting[0], len(queue.items))
                items, queue.items = queue.items, []
            for item in items:
                applied.extend(item.take())
            stop.wait(0.0002)

    thread = threading.Thread(target=consumer)
    thread.start()
    for i in range(20_000):
        outbox.put(SetXY(i / 20_000, 0.5))
    stop.set()
    thread.join(timeout=10)
    assert applied[-1] == SetXY(19_999 / 20_000, 0.5)
    assert max_waiting[0] <= 1  # never more than one batch in the engine's queue
    xs = [event.x for event in applied]
    assert xs == sorted(xs)  # newer positions only ever replace older ones
