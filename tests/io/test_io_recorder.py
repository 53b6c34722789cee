"""BlockRecorder: blocks pushed from a 'callback' come out as one WAV file, atomically."""

import numpy as np
import pytest
import soundfile

from nsynth_live.io.recorder import BlockRecorder


@pytest.mark.parametrize("block_frames", [1, 65, 256, 512])
def test_pushed_blocks_round_trip(tmp_path, rng, block_frames):
    audio = rng.uniform(-1, 1, size=(block_frames * 37 + 3, 2)).astype(np.float32)
    path = tmp_path / "sub" / "rec.wav"
    recorder = BlockRecorder(path, sample_rate=48000, channels=2, max_block_frames=block_frames, ring_blocks=64)
    for start in range(0, audio.shape[0], block_frames):  # 38 blocks: the ring never fills
        recorder.push(audio[start:start + block_frames])
    assert not path.exists(), "the final name appears only at close()"
    assert recorder.close() == path
    written, sample_rate = soundfile.read(path, dtype="float32")
    assert sample_rate == 48000
    assert recorder.dropped_blocks == 0
    np.testing.assert_array_equal(written, audio)
    assert recorder.frames_written == audio.shape[0]
    assert list(tmp_path.joinpath("sub").iterdir()) == [path], "no temporary file left behind"


def test_full_ring_drops_and_counts_instead_of_blocking(tmp_path):
    recorder = BlockRecorder(tmp_path / "r.wav", sample_rate=16000, channels=1, max_block_frames=4, ring_blocks=2)
    recorder._free = type(recorder._free)()  # simulate a writer thread that never frees a slot
    recorder.push(np.ones((4, 1), np.float32))
    assert recorder.dropped_blocks == 1
    recorder.abort()
    assert list(tmp_path.iterdir()) == []


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="max_block_frames"):
        BlockRecorder(tmp_path / "r.wav", sample_rate=48000, channels=2, max_block_frames=0)


def test_oversized_block_is_dropped_not_raised(tmp_path):
    recorder = BlockRecorder(tmp_path / "r.wav", sample_rate=48000, channels=2, max_block_frames=4, ring_blocks=4)
    recorder.push(np.ones((5, 2), np.float32))
    recorder.push(np.ones((4, 2), np.float32))
    recorder.close()
    assert recorder.dropped_blocks == 1 and recorder.frames_written == 4
