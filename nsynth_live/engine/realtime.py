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
"""

from __future__ import annotations

import logging
import math
import threading
import time

import numpy as np

logger = logging.getLogger(__name__)


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
    """

    def __init__(self, engine, *, block_size: int, prefill_hops: int = 2):
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

    def latency_report(self):
        """The engine's :class:`~nsynth_live.engine.engine.LatencyReport` for this block size."""
        return self.engine.latency_report(self.block_size, prefill_hops=self.prefill_hops)

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
        self.pump()
        self._thread = threading.Thread(target=self._run, name="nsynth-live-inference", daemon=True)
        self._thread.start()

    def stop(self, *, timeout_seconds: float = 5.0) -> None:
        """Stop the inference thread (the callback then underruns: close the stream first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_seconds)
            self._thread = None

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
            self._read_pos += n
        except Exception:
            self.callback_error_count += 1
            try:
                outdata.fill(0.0)
            except Exception:
                pass
