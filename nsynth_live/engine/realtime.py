"""Inference thread + preallocated ring buffer + a sounddevice callback that only copies.

The rules (../shared/reference/realtime-engine.md, "Rules for the audio callback"): the callback
fills the whole output every time, never allocates a buffer, logs, takes a lock, touches a file or
runs the model; it catches every exception and outputs silence (PortAudio never calls a callback
again after it raised). The inference thread renders hops with :meth:`Engine.render_hop` and
writes them into the ring so that ``prefill_hops`` hops plus one block stay queued ahead of the
callback.

The ring is single-producer / single-consumer: the producer only advances ``_write_pos``, the
consumer only ``_read_pos`` (monotonic Python ints; an assignment is atomic under the GIL), and
each side reads the other's counter before touching the samples between them.

Note-ons reach the callback first (:meth:`RealtimeRunner.post`): it starts the note's cached attack
(:mod:`nsynth_live.engine.attack_cache`) in the very block it runs, and posts the engine a
:class:`~nsynth_live.engine.events.CachedNoteOn` timed at the hand-over sample, which the ring is
never ahead of (``handoff_hops`` is sized from the ring's fill). A note-off during the attack is
applied to the attack at its frame when the engine cannot have rendered the hand-over yet
(:class:`~nsynth_live.engine.events.ReleaseAttack`), else the engine releases the voice as usual.
A background thread re-renders the cache when the timbre (XY, preset) has rested for 100 ms; until
then notes start from the last cache and morph like any held voice.
"""

from __future__ import annotations

import collections
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
from nsynth_live.engine.events import (
    CC_RESET_ALL_CONTROLLERS,
    CC_SUSTAIN_PEDAL,
    SUSTAIN_ON_THRESHOLD,
    AllNotesOff,
    AllSoundOff,
    CachedNoteOn,
    ControlChange,
    EventBatch,
    NoteOff,
    NoteOn,
    ReleaseAttack,
    Timed,
)

logger = logging.getLogger(__name__)

CACHE_ROWS_PER_BATCH = 64  # rows per batch of a background re-render (~0.1 s of one core each)


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
        yet, a key outside the model's range).
    cache_builds : int
        Attack caches rendered (the first one included).
    """

    def __init__(self, engine, *, block_size: int, prefill_hops: int = 2, attack_cache: bool = True,
                 velocity_layers: int = DEFAULT_VELOCITY_LAYERS, cache_settle_seconds: float = 0.25,
                 cache_cpu_share: float = 0.3):
        if isinstance(block_size, bool) or not isinstance(block_size, int) or not 1 <= block_size <= 65536:
            raise ValueError(f"block_size must be an int in [1, 65536] frames, got {block_size!r}")
        if isinstance(prefill_hops, bool) or not isinstance(prefill_hops, int) or not 0 <= prefill_hops <= 64:
            raise ValueError(f"prefill_hops must be an int in [0, 64], got {prefill_hops!r}")
        self.engine = engine
        self.block_size = block_size
        self.prefill_hops = prefill_hops
        self.target_fill_frames = int(math.ceil(prefill_hops * engine.nominal_hop_frames)) + block_size
        self.capacity_frames = self.target_fill_frames + 4 * engine.max_hop_frames + block_size
        self._ring = np.zeros((self.capacity_frames, engine.channels), dtype=np.float32)
        self._write_pos = 0  # frames ever written (producer only)
        self._read_pos = 0  # frames ever read (consumer only)
        self.xrun_count = 0
        self.underrun_count = 0
        self.callback_error_count = 0
        self.render_error_count = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll_seconds = engine.hop_seconds / 8.0

        self.use_attack_cache = bool(attack_cache)
        self.velocity_layers = velocity_layers
        self.cache_settle_seconds = float(cache_settle_seconds)
        if not 0.0 < cache_cpu_share <= 1.0:
            raise ValueError(f"cache_cpu_share must be in (0, 1], got {cache_cpu_share!r}")
        self.cache_cpu_share = float(cache_cpu_share)
        self.cache_builds_aborted = 0
        self._sample_origin = engine.sample_position  # model sample of ring frame 0
        self._ratio = engine.output_sample_rate / engine.spec.sample_rate
        # hops the cached attack plays alone: the engine must see the note before rendering the
        # hand-over; it may be a full ring plus the hop it is rendering ahead of the callback
        reach = self.target_fill_frames + engine.max_hop_frames + block_size + 2 * self._ratio
        self.handoff_hops = int(math.ceil(reach / engine.nominal_hop_frames)) + 1
        self._cache: AttackCache | None = None
        self._cache_thread: threading.Thread | None = None
        self._inbox: collections.deque = collections.deque()
        # playing attacks: [cache.attack, row, start_frame, gain, key, handoff_frame, release_from, kill_from]
        self._attacks: list = []
        self._attacks_by_key: dict = {}  # key -> its records in _attacks
        self._block_ramp = np.arange(self.capacity_frames, dtype=np.int64)
        self._mix = np.zeros(self.capacity_frames, dtype=np.float32)
        self._sustain_down = False
        self.cached_notes = 0
        self.uncached_notes = 0
        self.cache_builds = 0
        self.cache_build_seconds = 0.0

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
        self._inbox.append(event)

    @property
    def attack_cache(self) -> AttackCache | None:
        """The cache the callback plays from (None before :meth:`build_cache`)."""
        return self._cache

    def build_cache(self, *, throttled: bool = False) -> AttackCache | None:
        """Render the attack cache at the engine's present timbre target, on the calling thread.

        ``throttled``: sleep between batches to stay within ``cache_cpu_share`` of a core, and give
        up (returning None, the old cache stays) when the timbre target moves or the runner stops.
        """
        engine = self.engine
        started = time.perf_counter()
        target = engine.target_embedding
        between = None
        if throttled:
            def between(seconds: float) -> bool:
                if self._stop.wait(seconds * (1.0 / self.cache_cpu_share - 1.0)):
                    return False
                return bool(np.array_equal(engine.target_embedding, target))
        try:
            cache = build_attack_cache(engine.synth, target,
                                       output_sample_rate=engine.output_sample_rate,
                                       handoff_hops=self.handoff_hops,
                                       attack_seconds=engine.config.attack_seconds,
                                       velocity_layers=self.velocity_layers,
                                       rows_per_batch=CACHE_ROWS_PER_BATCH if throttled else 256,
                                       between_batches=between)
        except CacheBuildAborted:
            self.cache_builds_aborted += 1
            return None
        self.cache_build_seconds = time.perf_counter() - started
        self._cache = cache  # one reference assignment: the callback sees the old or the new
        self.cache_builds += 1
        return cache

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
        while not self._stop.wait(min(0.05, self.cache_settle_seconds)):
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
                self._stop.wait(1.0)

    def _handle(self, event, now: int) -> None:
        """Apply one inbox event at device frame ``now`` (the start of the block being filled)."""
        engine = self.engine
        if isinstance(event, EventBatch):  # the OSC server's outbox: its notes are played here too
            for item in event.take():
                self._handle(item, now)
            return
        if isinstance(event, NoteOn):
            cache = self._cache
            key = event.pitch_midi
            pitch = engine.model_pitch(key)  # keys outside the model's range transposed by octaves
            if cache is None or pitch is None:
                self.uncached_notes += 1
                engine.post(event)
                return
            row = cache.row(pitch, event.velocity)
            start = cache.note_start_frame(now)
            records = self._attacks_by_key.setdefault(key, [])
            for attack in records:  # a repeated key: the old attack fades (the engine fades its voice)
                if attack[7] < 0:
                    attack[7] = now
            handoff = start + int(round(cache.handoff_frames))
            if cache.integer_ratio:
                note_sample = start // cache.integer_ratio
            else:
                note_sample = int(round(start / self._ratio))
            at_sample = max(0, self._sample_origin + note_sample + cache.handoff_hops * cache.hop_length_samples)
            record = [cache.attack, row, start, engine.master_gain, key, handoff, -1, -1]
            self._attacks.append(record)
            records.append(record)
            engine.post(Timed(CachedNoteOn(key=key, pitch_midi=pitch, velocity=float(cache.velocities[row % cache.velocities.size]),
                                           cache=cache, row=row), at_sample))
            self.cached_notes += 1
            return
        if isinstance(event, NoteOff):
            if not self._sustain_down and self._release_attacks(event.pitch_midi, now):
                return
            engine.post(event)
            return
        if isinstance(event, AllNotesOff):
            if not self._sustain_down:
                for key in list(self._attacks_by_key):
                    self._release_attacks(key, now)
        elif isinstance(event, AllSoundOff):
            for attack in self._attacks:
                if attack[7] < 0:
                    attack[7] = now
        elif isinstance(event, ControlChange):
            if event.controller == CC_SUSTAIN_PEDAL:
                self._sustain_down = event.value >= SUSTAIN_ON_THRESHOLD
            elif event.controller == CC_RESET_ALL_CONTROLLERS:
                self._sustain_down = False
        engine.post(event)

    def _release_attacks(self, key: int, now: int) -> bool:
        """Release the attacks of ``key`` at ``now`` if the engine cannot have rendered their
        hand-over yet; True if it posted the engine a ReleaseAttack (else the caller posts NoteOff)."""
        released = False
        # the engine drains events before each hop; the hop it renders now may have drained them
        # already: the hand-over's hop must start after that one
        hop_frames = self.engine.nominal_hop_frames
        undrained_from = self._write_pos + self.engine.max_hop_frames
        for attack in self._attacks_by_key.get(key, ()):
            handoff_hop_start = math.floor(attack[5] / hop_frames) * hop_frames
            if attack[6] < 0 and attack[7] < 0 and handoff_hop_start >= undrained_from:
                attack[6] = now
                released = True
        if released:  # the model sample the device plays at frame `now`, through the resampler's delay
            delay = self.engine.resampler_delay_seconds * self.engine.output_sample_rate
            sample = self._sample_origin + int(round((now - delay) / self._ratio))
            self.engine.post(Timed(ReleaseAttack(key), max(0, sample)))
        return released

    def _mix_attacks(self, now: int, frames: int) -> None:
        """Sum the playing attacks over frames ``[now, now + frames)`` into ``self._mix``.

        Attacks without an envelope that cover the whole block (a chord's notes, most of the time)
        are summed in one gather and one matrix-vector product; the others one by one.
        """
        mix = self._mix[:frames]
        mix.fill(0.0)
        end = now + frames
        release = None
        kill_frames = self.engine.config.steal_fade_seconds * self.engine.output_sample_rate
        keep = []
        fast_table, fast_rows, fast_offsets, fast_gains = None, [], [], []
        for attack in self._attacks:
            table, row, start, gain, _key, _handoff, release_from, kill_from = attack
            width = table.shape[1]
            stop = start + width
            if stop <= now:
                continue  # finished
            if release_from < 0 and kill_from < 0 and start <= now and stop >= end and (
                    fast_table is None or table is fast_table):
                fast_table = table
                fast_rows.append(row)
                fast_offsets.append(now - start)
                fast_gains.append(gain)
                keep.append(attack)
                continue
            a0, a1 = max(now, start), min(end, stop)
            finished = False
            if a1 > a0:
                segment = table[row, a0 - start:a1 - start] * gain
                if release_from >= 0 or kill_from >= 0:
                    t = np.arange(a0, a1, dtype=np.float64)
                    if release_from >= 0:
                        if release is None:
                            release = 10.0 ** (-3.0 / (self.engine.preset.release_seconds
                                                       * self.engine.output_sample_rate))
                        segment = segment * release ** np.maximum(t - release_from, 0.0)
                    if kill_from >= 0:
                        segment = segment * np.clip(1.0 - (t - kill_from) / kill_frames, 0.0, 1.0)
                        finished = a1 - kill_from >= kill_frames  # faded out
                mix[a0 - now:a1 - now] += segment
            if not finished:
                keep.append(attack)
        if fast_rows:
            columns = np.asarray(fast_offsets)[:, None] + self._block_ramp[None, :frames]
            segments = fast_table[np.asarray(fast_rows)[:, None], columns]
            mix += np.asarray(fast_gains, dtype=np.float32) @ segments
        if len(keep) != len(self._attacks):
            self._attacks = keep
            by_key: dict = {}
            for attack in keep:
                by_key.setdefault(attack[4], []).append(attack)
            self._attacks_by_key = by_key

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
        while self._write_pos - self._read_pos < self.target_fill_frames:
            try:
                block = self.engine.render_hop()
            except Exception as error:  # keep the stream alive, say what happened (not the callback)
                self.render_error_count += 1
                logger.error("render_hop failed (%r); a hop of silence was queued", error)
                block = np.zeros((int(self.engine.nominal_hop_frames), self.engine.channels),
                                 dtype=np.float32)
            self._write(block)
            hops += 1
        return hops

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
        if self.use_attack_cache and self._cache is None:
            self.build_cache()
        self.pump()
        self._thread = threading.Thread(target=self._run, name="nsynth-live-inference", daemon=True)
        self._thread.start()
        if self.use_attack_cache:
            self._cache_thread = threading.Thread(target=self._cache_loop, name="nsynth-live-attack-cache",
                                                  daemon=True)
            self._cache_thread.start()

    def stop(self, *, timeout_seconds: float = 5.0) -> None:
        """Stop the inference thread (the callback then underruns: close the stream first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_seconds)
            self._thread = None
        if self._cache_thread is not None:
            self._cache_thread.join(timeout_seconds)
            self._cache_thread = None

    # ------------------------------------------------------------------ consumer side
    def audio_callback(self, outdata, frames, time_info, status) -> None:
        """sounddevice ``OutputStream`` callback: copy ``frames`` frames from the ring.

        Parameters
        ----------
        outdata : (frames, channels) float32 array
            Filled completely, every time.
        frames : int
        time_info : object
            Unused.
        status : sounddevice.CallbackFlags or int
            Truthy when PortAudio reports an xrun (counted in ``xrun_count``).
        """
        try:
            if status:
                self.xrun_count += 1
            now = self._read_pos
            inbox = self._inbox
            while inbox:
                try:
                    self._handle(inbox.popleft(), now)
                except Exception:  # a bad event must not cost the block
                    self.callback_error_count += 1
            available = self._write_pos - self._read_pos
            n = frames if frames <= available else available
            start = self._read_pos % self.capacity_frames
            first = self.capacity_frames - start
            if first > n:
                first = n
            outdata[:first] = self._ring[start:start + first]
            if first < n:
                outdata[first:n] = self._ring[:n - first]
            if n < frames:
                outdata[n:] = 0.0
                self.underrun_count += 1
            if self._attacks:
                self._mix_attacks(now, frames)
                outdata += self._mix[:frames, None]
                peak = float(np.max(np.abs(outdata)))
                if peak > self.engine.config.limiter_knee:
                    outdata[:] = self.engine._soft_clip(outdata)
            self._read_pos += n
        except Exception:
            self.callback_error_count += 1
            try:
                outdata.fill(0.0)
            except Exception:
                pass
