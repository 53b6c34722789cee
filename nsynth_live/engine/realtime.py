"""The producer side of the live instrument: the inference thread, the ring, the attack cache.

The inference thread renders hops with :meth:`Engine.render_hop` into a preallocated ring so that
``prefill_hops`` hops plus one block stay queued ahead of the audio callback
(:class:`~nsynth_live.engine.callback.CallbackSide`, rules in docs/running.md, "The audio
callback's rules"), which runs in this process (:meth:`RealtimeRunner.audio_callback`) or in the
audio process (``link_factory``, :mod:`nsynth_live.io.audio_process`). The two sides share only
arrays: the ring, its counters (single-writer write / read positions) and a few scalars.

Note-ons reach the callback first (:meth:`RealtimeRunner.post`): it starts the note's cached attack
(:mod:`nsynth_live.engine.attack_cache`) in the very block it runs, and posts the engine a
:class:`~nsynth_live.engine.events.CachedNoteOn` timed at the hand-over sample, which the ring is
never ahead of (``handoff_hops`` is sized from the ring's fill). A note-off during the attack is
applied to the attack at its frame when the engine cannot have rendered the hand-over yet
(:class:`~nsynth_live.engine.events.ReleaseAttack`), else the engine releases the voice as usual.
A background thread re-renders the cache when the timbre (XY, preset) has rested for 0.25 s; until
then notes start from the last cache and morph like any held voice.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import os
import threading
import time

import numpy as np

from nsynth_live.engine.attack_cache import (
    DEFAULT_VELOCITY_LAYERS,
    AttackCache,
    CacheBuildAborted,
    build_attack_cache,
)
from nsynth_live.engine.callback import (
    C_CACHED,
    C_ERRORS,
    C_READ,
    C_UNCACHED,
    C_UNDERRUNS,
    C_WRITE,
    C_XRUNS,
    N_COUNTERS,
    N_SCALARS,
    S_MASTER_GAIN,
    S_RELEASE_SECONDS,
    S_WIDTH,
    CallbackConfig,
    CallbackSide,
)
from nsynth_live.engine.events import EventBatch

logger = logging.getLogger(__name__)

CACHE_ROWS_PER_BATCH = 64  # rows per batch of a background re-render (~0.1 s of one core each)
PEAK_FALL_DB_PER_SECOND = 20.0  # dB/s: how fast output_peak falls after a loud hop (a peak meter's release)


class RealtimeRunner:
    """Keeps a ring buffer of engine output ahead of the audio device.

    Parameters
    ----------
    engine : Engine
        The engine; only this runner's thread calls its ``render_hop`` once started.
    block_size : int
        Frames per device callback (the ``blocksize`` given to sounddevice; the callback accepts
        other sizes too, up to the ring's capacity).
    prefill_hops : int
        Hops kept queued beyond one block (latency vs. safety against a slow hop).
    attack_cache : bool
        Play note-ons from an attack cache in the callback (first sound within one block). False:
        every event goes to the engine and waits for the ring (the latency report's total).
    velocity_layers : int
        Velocity layers of the attack cache.
    cache_settle_seconds : float
        The timbre must rest this long before the cache is re-rendered.
    cache_cpu_share : float
        Share of one core the background re-render may take (it sleeps between batches of
        ``CACHE_ROWS_PER_BATCH`` rows); it restarts if the timbre moves meanwhile.
    link_factory : callable, optional
        ``link_factory(callback_config) -> link``: the callback runs elsewhere (the audio process,
        :class:`nsynth_live.io.audio_process.AudioProcess`); the link provides the shared ``ring``,
        ``counters`` and ``scalars``, ``send_event(event)``, ``receive_events(caches_by_id)`` and
        ``publish_cache(cache)``. None: the callback runs in this process
        (:meth:`audio_callback`, :attr:`callback_side`).

    Attributes
    ----------
    xrun_count : int
        Callbacks whose ``status`` flagged an over/underflow (reported by PortAudio).
    underrun_count : int
        Callbacks that found the ring short and zero-filled the rest.
    callback_error_count : int
        Exceptions caught in the callback (silence was output).
    render_error_count : int
        Exceptions caught in the inference thread (a hop of silence was queued instead).
    cached_notes, uncached_notes : int
        Note-ons the callback started from the cache, and those it passed to the engine (no cache
        yet, a key ignored as outside the model's range).
    cache_builds : int
        Attack caches rendered (the first one included).
    output_peak : float
        Peak meter of the hops rendered for the ring (read-only, for displays such as the OSC
        feedback): linear ``max |sample|`` over channels (1.0 = full scale) of the latest hop, or
        the previous value falling ``PEAK_FALL_DB_PER_SECOND``, whichever is larger. Written by the
        inference thread once per hop; attacks the callback plays from the attack cache are not
        in it (only the engine's hops are).
    """

    def __init__(self, engine, *, block_size: int, prefill_hops: int = 2, attack_cache: bool = True,
                 velocity_layers: int = DEFAULT_VELOCITY_LAYERS, cache_settle_seconds: float = 0.25,
                 cache_cpu_share: float = 0.3, link_factory=None):
        if isinstance(block_size, bool) or not isinstance(block_size, int) or not 1 <= block_size <= 65536:
            raise ValueError(f"block_size must be an int in [1, 65536] frames, got {block_size!r}")
        if isinstance(prefill_hops, bool) or not isinstance(prefill_hops, int) or not 0 <= prefill_hops <= 64:
            raise ValueError(f"prefill_hops must be an int in [0, 64], got {prefill_hops!r}")
        self.engine = engine
        self.block_size = block_size
        self.prefill_hops = prefill_hops
        self.target_fill_frames = int(math.ceil(prefill_hops * engine.nominal_hop_frames)) + block_size
        self.capacity_frames = self.target_fill_frames + 4 * engine.max_hop_frames + block_size
        self.render_error_count = 0
        self.output_peak = 0.0
        self._peak_fall = 10.0 ** (-PEAK_FALL_DB_PER_SECOND * engine.hop_seconds / 20.0)  # per hop
        self._stop = threading.Event()
        self._stop_cache = threading.Event()  # set by stop_cache_thread() and stop()
        self._thread: threading.Thread | None = None
        self._poll_seconds = engine.hop_seconds / 8.0

        self.use_attack_cache = bool(attack_cache)
        self.velocity_layers = velocity_layers
        self.cache_settle_seconds = float(cache_settle_seconds)
        if not 0.0 < cache_cpu_share <= 1.0:
            raise ValueError(f"cache_cpu_share must be in (0, 1], got {cache_cpu_share!r}")
        self.cache_cpu_share = float(cache_cpu_share)
        self.cache_builds_aborted = 0
        # hops the cached attack plays alone: the engine must see the note before rendering the
        # hand-over; it may be a full ring plus the hop it is rendering ahead of the callback
        ratio = engine.output_sample_rate / engine.spec.sample_rate
        reach = self.target_fill_frames + engine.max_hop_frames + block_size + 2 * ratio
        self.handoff_hops = int(math.ceil(reach / engine.nominal_hop_frames)) + 1
        self._cache: AttackCache | None = None
        self._caches_by_id: dict = {}  # the caches the callback may still name (remote audio)
        self._cache_thread: threading.Thread | None = None
        self._osc_batches: collections.deque = collections.deque()  # remote audio: taken per hop
        self.callback_config = CallbackConfig.for_engine(engine, capacity_frames=self.capacity_frames)
        if link_factory is None:
            self.link = None
            self._ring = np.zeros((self.capacity_frames, engine.channels), dtype=np.float32)
            self._counters = np.zeros(N_COUNTERS, dtype=np.int64)
            self._scalars = np.zeros(N_SCALARS, dtype=np.float64)
            self.callback_side = CallbackSide(self.callback_config, ring=self._ring, counters=self._counters,
                                              scalars=self._scalars, to_engine=engine.post)
        else:
            self.link = link_factory(self.callback_config)
            self._ring, self._counters, self._scalars = self.link.ring, self.link.counters, self.link.scalars
            self.callback_side = None
        self._publish_scalars()
        self.cache_builds = 0
        self.cache_build_seconds = 0.0
        self._cache_counter = 0

    def latency_report(self):
        """The engine's :class:`~nsynth_live.engine.engine.LatencyReport` for this block size."""
        return self.engine.latency_report(self.block_size, prefill_hops=self.prefill_hops,
                                          cached_attacks=self.use_attack_cache)

    # ------------------------------------------------------------------ events and the attack cache
    def post(self, event) -> None:
        """Queue a MIDI event for the next callback (thread-safe, never blocks).

        Note events go through the callback so that note-ons start there; the callback forwards
        every event to the engine. Non-note events (XY, presets) may go to ``engine.post`` directly.
        """
        if self.link is None:
            self.callback_side.post(event)
        elif isinstance(event, EventBatch):
            self._osc_batches.append(event)  # taken by the inference thread, once per hop
        elif not self.link.send_event(event):  # not a note event: straight to the engine
            self.engine.post(event)

    @property
    def attack_cache(self) -> AttackCache | None:
        """The cache the callback plays from (None before :meth:`build_cache`)."""
        return self._cache

    def _set_cache(self, cache: AttackCache) -> None:
        self._cache_counter += 1
        cache = dataclasses.replace(cache, cache_id=self._cache_counter)
        self._caches_by_id[cache.cache_id] = cache
        for old in [k for k in self._caches_by_id if k <= cache.cache_id - 4]:
            del self._caches_by_id[old]  # a note names its cache within ~0.1 s of the switch
        if self.link is None:
            self.callback_side.cache = cache  # one reference assignment: the callback sees old or new
        else:
            self.link.publish_cache(cache)
        self._cache = cache

    # ------------------------------------------------------------------ counters (shared with the callback)
    @property
    def _write_pos(self) -> int:
        return int(self._counters[C_WRITE])

    @_write_pos.setter
    def _write_pos(self, value: int) -> None:
        self._counters[C_WRITE] = value

    @property
    def _read_pos(self) -> int:
        return int(self._counters[C_READ])

    @property
    def xrun_count(self) -> int:
        """Callbacks whose status flagged an xrun."""
        return int(self._counters[C_XRUNS])

    @property
    def underrun_count(self) -> int:
        """Callbacks that found the ring short (silence was played for the rest)."""
        return int(self._counters[C_UNDERRUNS])

    @property
    def callback_error_count(self) -> int:
        """Exceptions caught in the callback."""
        return int(self._counters[C_ERRORS])

    @property
    def cached_notes(self) -> int:
        """Note-ons started from the attack cache."""
        return int(self._counters[C_CACHED])

    @property
    def uncached_notes(self) -> int:
        """Note-ons passed to the engine without a cached attack."""
        return int(self._counters[C_UNCACHED])

    def _publish_scalars(self) -> None:
        self._scalars[S_MASTER_GAIN] = self.engine.master_gain
        self._scalars[S_RELEASE_SECONDS] = self.engine.preset.release_seconds
        self._scalars[S_WIDTH] = self.engine.preset.width

    def build_cache(self, *, throttled: bool = False) -> AttackCache | None:
        """Render the attack cache at the engine's present timbre target, on the calling thread.

        ``throttled``: sleep between batches to stay within ``cache_cpu_share`` of a core, and give
        up (returning None, the old cache stays) when the timbre target moves or the runner stops.
        """
        engine = self.engine
        started = time.perf_counter()
        target = engine.target_embedding
        def between(seconds: float) -> bool:  # throttled: leave the CPU, give up if the timbre moved
            if self._stop_cache.wait(seconds * (1.0 / self.cache_cpu_share - 1.0)):
                return False
            return bool(np.array_equal(engine.target_embedding, target))

        try:
            cache = build_attack_cache(engine.synth, target,
                                       output_sample_rate=engine.output_sample_rate,
                                       handoff_hops=self.handoff_hops,
                                       attack_seconds=engine.config.attack_seconds,
                                       velocity_layers=self.velocity_layers,
                                       rows_per_batch=CACHE_ROWS_PER_BATCH if throttled else 256,
                                       between_batches=between if throttled else None)
        except CacheBuildAborted:
            self.cache_builds_aborted += 1
            return None
        self.cache_build_seconds = time.perf_counter() - started
        self._set_cache(cache)
        self.cache_builds += 1
        return self._cache

    def _cache_loop(self) -> None:
        """Re-render the cache when the timbre target has rested for ``cache_settle_seconds``."""
        try:  # below the inference thread, even when the process runs real-time (--realtime-priority):
            tid = threading.get_native_id()  # Linux scheduling and niceness are per thread
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, 10)
        except (AttributeError, OSError):
            pass
        seen = None
        seen_at = time.monotonic()
        while not self._stop_cache.wait(min(0.05, self.cache_settle_seconds)):
            try:
                target = self.engine.target_embedding
                cache = self._cache
                if cache is not None and np.allclose(target, cache.embedding, atol=1e-6, rtol=0):
                    seen = None
                    continue
                if seen is None or not np.array_equal(target, seen):
                    seen, seen_at = target, time.monotonic()
                    continue
                if time.monotonic() - seen_at >= self.cache_settle_seconds:
                    self.build_cache(throttled=True)
                    seen = None
            except Exception as error:  # noqa: BLE001 - the old cache keeps playing
                logger.error("attack cache refresh failed (%r); notes start from the previous cache", error)
                self._stop_cache.wait(1.0)

    # ------------------------------------------------------------------ producer side
    @property
    def fill_frames(self) -> int:
        """Frames queued in the ring."""
        return self._write_pos - self._read_pos

    def pump(self) -> int:
        """Render hops until the ring holds the target fill; returns the hops rendered.

        The inference thread calls this in a loop; tests call it directly (no thread).
        """
        hops = 0
        if self.link is not None:
            self._receive()
        while self._write_pos - self._read_pos < self.target_fill_frames:
            if self.link is not None and hops:
                self._receive()
            try:
                block = self.engine.render_hop()
                self._publish_scalars()
            except Exception as error:  # keep the stream alive, say what happened (not the callback)
                self.render_error_count += 1
                logger.error("render_hop failed (%r); a hop of silence was queued", error)
                block = np.zeros((int(self.engine.nominal_hop_frames), self.engine.channels),
                                 dtype=np.float32)
            hop_peak = float(np.abs(block).max()) if block.size else 0.0
            self.output_peak = max(hop_peak, self.output_peak * self._peak_fall)
            self._write(block)
            hops += 1
        return hops

    def _receive(self) -> None:
        """Remote audio: the callback's engine events, and the OSC outbox (its note events go to
        the callback, the rest to the engine)."""
        for event in self.link.receive_events(self._caches_by_id):
            self.engine.post(event)
        while self._osc_batches:
            for event in self._osc_batches.popleft().take():
                if not self.link.send_event(event):  # the queue carries note events only
                    self.engine.post(event)

    def _write(self, block: np.ndarray) -> None:
        n = block.shape[0]
        while self.capacity_frames - (self._write_pos - self._read_pos) < n:
            if self._stop.is_set():
                return
            time.sleep(self._poll_seconds)  # ring full (cannot happen at the target fill)
        start = self._write_pos % self.capacity_frames
        first = min(n, self.capacity_frames - start)
        self._ring[start:start + first] = block[:first]
        if first < n:
            self._ring[:n - first] = block[first:]
        self._write_pos += n  # publish after the samples are in place

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.pump() == 0:
                time.sleep(self._poll_seconds)

    def start(self) -> None:
        """Prime the ring on the caller's thread, then start the inference thread.

        Create and warm the model before calling this (session creation holds the GIL).
        """
        if self._thread is not None:
            raise RuntimeError("RealtimeRunner already started")
        self._stop.clear()
        self._stop_cache.clear()
        if self.use_attack_cache and self._cache is None:
            self.build_cache()
        self.pump()
        self._thread = threading.Thread(target=self._run, name="nsynth-live-inference", daemon=True)
        self._thread.start()
        if self.use_attack_cache:
            self._cache_thread = threading.Thread(target=self._cache_loop, name="nsynth-live-attack-cache",
                                                  daemon=True)
            self._cache_thread.start()

    def stop_cache_thread(self, *, timeout_seconds: float = 5.0) -> None:
        """Stop re-rendering the attack cache (before the audio process stops: nothing is
        published to it afterwards). :meth:`stop` does this too."""
        self._stop_cache.set()
        if self._cache_thread is not None:
            self._cache_thread.join(timeout_seconds)
            self._cache_thread = None

    def release_link(self) -> None:
        """Drop this runner's views of the audio process's shared memory (after :meth:`stop`,
        before ``link.close()``); the counters read 0 afterwards."""
        self._ring = np.zeros((0, self.engine.channels), dtype=np.float32)
        self._counters = np.zeros(N_COUNTERS, dtype=np.int64)
        self._scalars = np.zeros(N_SCALARS, dtype=np.float64)

    def stop(self, *, timeout_seconds: float = 5.0) -> None:
        """Stop the inference thread (the callback then underruns: close the stream first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_seconds)
            self._thread = None
        self.stop_cache_thread(timeout_seconds=timeout_seconds)

    # ------------------------------------------------------------------ consumer side
    def audio_callback(self, outdata, frames, time_info, status) -> None:
        """sounddevice ``OutputStream`` callback (in-process audio): see
        :meth:`nsynth_live.engine.callback.CallbackSide.audio_callback`."""
        self.callback_side.audio_callback(outdata, frames, time_info, status)
