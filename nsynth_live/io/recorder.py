"""Record what the audio callback played, without touching files in the callback.

The callback calls :meth:`BlockRecorder.push`, which copies the block into one slot of a
preallocated ring and hands the slot number to a writer thread through a queue; the writer thread
appends slots to a WAV file (soundfile). The file is written under a temporary name in the same
folder and moved into place by :meth:`BlockRecorder.close` (atomic: a killed run never leaves a
truncated file under the final name).
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from pathlib import Path

import numpy as np

from nsynth_live.fileio import remove_stale_temporaries

_STOP = -1  # sentinel slot number


class BlockRecorder:
    """Preallocated block ring + writer thread producing a float WAV file.

    Parameters
    ----------
    path : str or Path
        Final WAV path (its folder is created).
    sample_rate : int
        Hz of the recorded stream.
    channels : int
        Channels of each block.
    max_block_frames : int
        Largest block :meth:`push` will get (PortAudio may call back with fewer frames).
    ring_blocks : int
        Slots in the ring; with 512-frame blocks at 48 kHz, 512 slots hold 5.5 s of audio, far
        more than the writer thread ever lags.

    Attributes
    ----------
    frames_written : int
        Frames appended to the file so far.
    dropped_blocks : int
        Blocks lost because the ring was full (the writer thread fell behind) or a block was larger
        than ``max_block_frames``; 0 in a healthy run.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        sample_rate: int,
        channels: int,
        max_block_frames: int,
        ring_blocks: int = 512,
    ) -> None:
        import soundfile

        if max_block_frames < 1 or ring_blocks < 2 or channels < 1:
            raise ValueError(
                f"need max_block_frames >= 1, ring_blocks >= 2, channels >= 1; got "
                f"{max_block_frames}, {ring_blocks}, {channels}"
            )
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # the temporary-file convention of nsynth_live.fileio: .<name>.<random>.tmp, and a killed run's removed
        remove_stale_temporaries(self.path.parent, names=[self.path.name])
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self._tmp_path = Path(tmp)
        self._file = soundfile.SoundFile(
            self._tmp_path, mode="w", samplerate=int(sample_rate), channels=channels, subtype="FLOAT", format="WAV"
        )
        self._ring = np.empty((ring_blocks, max_block_frames, channels), dtype=np.float32)
        self._ring.fill(0.0)  # touch every page now: no page faults inside the audio callback later
        self._frames = np.zeros(ring_blocks, dtype=np.int64)
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(ring_blocks):
            self._free.put(slot)
        self._filled: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.frames_written = 0
        self.dropped_blocks = 0
        self._closed = False
        self._thread = threading.Thread(target=self._drain, name="nsynth-recorder", daemon=True)
        self._thread.start()

    def push(self, block: np.ndarray) -> None:
        """Copy one output block into the ring (audio-callback safe: no file I/O, no blocking).

        Parameters
        ----------
        block : (frames, channels) float32
            ``frames <= max_block_frames``.
        """
        frames = block.shape[0]
        if frames > self._ring.shape[1]:  # larger than promised: drop it, never raise in a callback
            self.dropped_blocks += 1
            return
        try:
            slot = self._free.get_nowait()
        except queue.Empty:
            self.dropped_blocks += 1
            return
        self._ring[slot, :frames] = block
        self._frames[slot] = frames
        self._filled.put(slot)

    def _drain(self) -> None:
        while True:
            slot = self._filled.get()
            if slot == _STOP:
                return
            frames = int(self._frames[slot])
            self._file.write(self._ring[slot, :frames])
            self.frames_written += frames
            self._free.put(slot)

    def close(self) -> Path:
        """Write what is queued, close the file and move it to :attr:`path` (idempotent).

        Returns
        -------
        Path
            The final WAV path.
        """
        if not self._closed:
            self._closed = True
            self._filled.put(_STOP)
            self._thread.join()
            self._file.close()
            os.chmod(self._tmp_path, 0o644)
            os.replace(self._tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        """Stop and delete the temporary file (nothing is written under :attr:`path`)."""
        if not self._closed:
            self._closed = True
            self._filled.put(_STOP)
            self._thread.join()
            self._file.close()
            self._tmp_path.unlink(missing_ok=True)
