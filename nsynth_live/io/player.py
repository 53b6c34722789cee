"""Play timed events (a MIDI file) into the live engine in real time, on a thread of its own."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable, Sequence


class EventPlayer:
    """Post ``(time_seconds, event)`` pairs to the engine at their times.

    Parameters
    ----------
    timed_events : iterable of (float, Event)
        Seconds from the start of playback (non-decreasing order is not required; they are sorted)
        and the event to post then, e.g. from :func:`nsynth_live.render.offline.midi_file_events`.
    post : callable
        ``Engine.post`` (thread-safe).
    clock : callable
        Monotonic seconds; injectable for tests.
    on_finished : callable, optional
        Called on the player thread after the last event was posted (not when stopped early).

    Attributes
    ----------
    events_posted : int
    finished : threading.Event
        Set when the last event was posted or the player was stopped.
    """

    def __init__(
        self,
        timed_events: Iterable[tuple[float, Any]],
        post: Callable[[Any], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        self._events: Sequence[tuple[float, Any]] = sorted(timed_events, key=lambda pair: float(pair[0]))
        self._post = post
        self._clock = clock
        self._on_finished = on_finished
        self._stop = threading.Event()
        self.finished = threading.Event()
        self.events_posted = 0
        self._thread: threading.Thread | None = None
        self.start_time: float | None = None

    @property
    def duration_seconds(self) -> float:
        """Time of the last event (0 for an empty list)."""
        return float(self._events[-1][0]) if self._events else 0.0

    def start(self) -> None:
        """Start playback now (the first event's time is counted from this call)."""
        self.start_time = self._clock()
        self._thread = threading.Thread(target=self._run, name="nsynth-player", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.start_time is not None
        for time_seconds, event in self._events:
            while True:
                wait = self.start_time + float(time_seconds) - self._clock()
                if wait <= 0:
                    break
                if self._stop.wait(min(wait, 0.05)):
                    self.finished.set()
                    return
            self._post(event)
            self.events_posted += 1
        self.finished.set()
        if self._on_finished is not None:
            self._on_finished()

    def stop(self) -> None:
        """Stop early (idempotent); joins the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
