"""Model v3 (harmonic-plus-noise SING): DSP facts, crop / step / replay / ONNX equal the whole note."""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nsynth_live.functional.harmonic_synth import (
    make_noise_table,
    noise_band_edges_hz,
    noise_blocks,
    partial_frequencies_hz,
    render_hops,
    sub_hop_length,
)
from nsynth_live.models.checkpoint import load_sing, save_sing
from nsynth_live.models.sing_configs import SING_V3, SingConfig, SingHarmonicConfig, sing_config_from_dict
from nsynth_live.models.sing_harmonic import SingHarmonic, SingHarmonicReplay, SingHarmonicStep
from nsynth_live.runtime.sing_export import export_sing_onnx
from nsynth_live.runtime.sing_onnx import load_synth

SMALL = SingHarmonicConfig(name="test-v3", sample_rate=16000, hop_length_samples=128, note_samples=16000,
                           lstm_hidden=24, lstm_layers=2, num_instruments=3, n_harmonics=12, n_noise_bands=6,
                           noise_table_samples=4096)
NAMES = ["keyboard_acoustic_000", "organ_electronic_001", "flute_acoustic_002"]


def peak_frequency_hz(audio, sample_rate):
    """Frequency of the strongest FFT peak, refined by quadratic interpolation of log magnitudes."""
    window = np.blackman(len(audio))
    spectrum = np.log(np.abs(np.fft.rfft(audio * window, 8 * len(audio))) + 1e-12)
    k = int(np.argmax(spectrum))
    a, b, c = spectrum[k - 1:k + 2]
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sample_rate / (8 * len(audio))


def test_partials_sound_at_the_exact_frequencies_with_no_drift_between_hops():
    sample_rate, hop, frames = 48000, 512, 60
    f0 = 440.0 * 2 ** ((59 - 69) / 12)  # B3: SING v2 played it 20 cents sharp
    freqs = partial_frequencies_hz(torch.tensor([f0]), 3)
    amps = torch.zeros(1, frames + 1, 3)
    amps[:, 1:, 2] = 0.5  # only the third partial, steady after the first hop
    table = torch.from_numpy(make_noise_table(2, 4096, sample_rate=sample_rate))
    audio = render_hops(amps, torch.zeros(1, frames + 1, 2), freqs, torch.tensor([0]), noise_blocks(table, hop),
                        sample_rate=sample_rate, hop_length_samples=hop)[0].numpy()
    steady = audio[hop:]
    measured = peak_frequency_hz(steady, sample_rate)
    assert abs(1200 * math.log2(measured / (3 * f0))) < 0.05  # cents
    reference = 0.5 * np.sin(2 * np.pi * 3 * f0 * np.arange(hop, frames * hop) / sample_rate)
    assert np.max(np.abs(steady - reference)) < 2e-4  # phase follows the sample index: no seam at any hop


def test_inharmonic_partials_follow_the_stiff_string_law():
    freqs = partial_frequencies_hz(torch.tensor([100.0]), 10, torch.tensor([1e-3]))[0].numpy()
    k = np.arange(1, 11)
    assert np.allclose(freqs, 100.0 * k * np.sqrt(1 + 1e-3 * k ** 2), rtol=1e-6)


def test_noise_table_bands_are_disjoint_unit_rms_and_cover_the_band():
    table = make_noise_table(8, 8192, sample_rate=48000)
    assert np.allclose(np.sqrt(np.mean(table ** 2, axis=1)), 1.0, rtol=1e-4)
    edges = noise_band_edges_hz(8, sample_rate=48000)
    assert edges[0] == 0 and edges[-1] == 24000
    spectra = np.abs(np.fft.rfft(table, axis=1)) ** 2
    freqs = np.fft.rfftfreq(8192, 1 / 48000)
    for band in range(8):
        inside = (freqs >= edges[band]) & (freqs < edges[band + 1])
        assert spectra[band, ~inside].sum() < 1e-9 * spectra[band].sum()
    with pytest.raises(ValueError, match="holds no bin"):
        make_noise_table(64, 64, sample_rate=48000)


def test_sub_hop_length_divides_the_hop():
    for hop in (1, 7, 128, 256, 480, 512, 768):
        q = sub_hop_length(hop)
        assert hop % q == 0 and q <= max(1, int(math.sqrt(2 * hop)))
    assert sub_hop_length(512) == 32


def test_amplitudes_mute_partials_above_0_45_of_the_sample_rate():
    torch.manual_seed(0)
    model = SingHarmonic(SMALL)
    emb = model.instrument_embedding(torch.tensor([0]))
    freqs = model.partial_frequencies(emb, torch.tensor([96]))  # 1047 Hz: partials 7.. are above 7.2 kHz
    amps = model.amplitudes(torch.randn(1, 4, 1 + SMALL.n_controls), freqs)
    assert torch.all(amps[..., :SMALL.n_harmonics][..., freqs[0] >= 0.45 * 16000] == 0)
    assert torch.all(amps[..., :SMALL.n_harmonics][..., freqs[0] < 0.45 * 16000] > 0)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = SingHarmonic(SMALL).eval()
    with torch.no_grad():  # louder than a new model, so that 1e-4 is a tight bound
        m.sequence_generator.output.bias[0] = 1.0
        m.sequence_generator.output.bias[1 + SMALL.n_harmonics:] = -0.5
    return m


def conditioning(model):
    return (model.instrument_embedding(torch.tensor([0, 2])).detach(), torch.tensor([60, 47]),
            torch.tensor([100.0, 40.0]))


def test_crops_and_streaming_steps_equal_the_whole_note(model):
    emb, pitch, vel = conditioning(model)
    hop = SMALL.hop_length_samples
    with torch.no_grad():
        whole = model(emb, pitch, vel)
        assert whole.shape == (2, SMALL.time_steps * hop) and whole.abs().max() > 0.05
        crop = model(emb, pitch, vel, first_frame=torch.tensor([30, 50]), frames=20, gradient_frames_before=3)
        assert torch.allclose(crop[0], whole[0, 30 * hop:50 * hop], atol=1e-6)
        assert torch.allclose(crop[1], whole[1, 50 * hop:70 * hop], atol=1e-6)
        step = SingHarmonicStep(model)
        state = step.initial_state(2)
        hops = []
        for t in range(SMALL.time_steps):
            audio, h, c, ctx = step(emb, pitch, vel, torch.full((2,), t), state["lstm_h"], state["lstm_c"], state["context"])
            state = {"lstm_h": h, "lstm_c": c, "context": ctx}
            hops.append(audio)
        assert torch.allclose(torch.cat(hops, dim=1), whole, atol=1e-6)
    with pytest.raises(ValueError, match="inside the note"):
        model(emb, pitch, vel, first_frame=torch.tensor([SMALL.time_steps - 2, 0]), frames=5)


def test_replay_equals_stepping_from_one_frame(model):
    emb, pitch, vel = conditioning(model)
    other = model.instrument_embedding(torch.tensor([1, 1])).detach()
    step, replay = SingHarmonicStep(model), SingHarmonicReplay(model)
    with torch.no_grad():
        state = step.initial_state(2)
        for t in range(10):
            _, h, c, ctx = step(emb, pitch, vel, torch.full((2,), t), state["lstm_h"], state["lstm_c"], state["context"])
            state = {"lstm_h": h, "lstm_c": c, "context": ctx}
        for frames in (1, 5):
            stepped = dict(state)
            for t in range(10, 10 + frames):
                _, h, c, ctx = step(other, pitch, vel, torch.full((2,), t), stepped["lstm_h"], stepped["lstm_c"],
                                    stepped["context"])
                stepped = {"lstm_h": h, "lstm_c": c, "context": ctx}
            times = torch.arange(10, 10 + frames)[None].expand(2, -1)
            h, c, ctx = replay(other, pitch, vel, times, state["lstm_h"], state["lstm_c"])
            assert torch.allclose(h, stepped["lstm_h"], atol=1e-6) and torch.allclose(ctx, stepped["context"], atol=1e-7)


def test_onnx_equals_pytorch_over_whole_notes_and_loads_as_a_streaming_synth(model, tmp_path):
    path = tmp_path / "v3.onnx"
    export_sing_onnx(model, NAMES, path, pitch_min_midi=40, pitch_max_midi=80)
    synth = load_synth(path, test_note_peak_limit=None)
    spec = synth.spec
    assert (spec.sample_rate, spec.hop_length_samples, spec.preroll_steps) == (16000, 128, 0)
    assert spec.time_steps == SMALL.time_steps and spec.decoder_half_kernel_frames == 0
    assert set(synth.new_state(3)) == {"lstm_h", "lstm_c", "context"}
    assert synth.replay_session is not None and synth.replay_min_frames == 1
    emb, pitch, vel = conditioning(model)
    with torch.no_grad():
        whole = model(emb, pitch, vel).numpy()
    state = synth.new_state(2)
    hops = []
    for t in range(spec.time_steps):
        audio, state = synth.step(emb.numpy(), pitch.numpy(), vel.numpy().astype(np.float32), np.full(2, t), state)
        hops.append(audio)
    streamed = np.concatenate(hops, axis=1)
    assert np.max(np.abs(streamed - whole)) <= 1e-4
    assert np.max(np.abs(whole)) > 0.05


def test_checkpoint_round_trip_and_config_dispatch(model, tmp_path):
    path = save_sing(model, NAMES, tmp_path / "v3.pt")
    loaded, names = load_sing(path)
    assert isinstance(loaded, SingHarmonic) and names == NAMES and loaded.config == SMALL
    emb, pitch, vel = conditioning(model)
    with torch.no_grad():
        assert torch.equal(loaded(emb, pitch, vel), model(emb, pitch, vel))
    assert isinstance(sing_config_from_dict(SING_V3.to_dict()), SingHarmonicConfig)
    assert isinstance(sing_config_from_dict(SingConfig().to_dict()), SingConfig)  # v2 files have no architecture


def test_config_refuses_inconsistent_sizes():
    with pytest.raises(ValueError, match="multiple of the hop"):
        replace(SING_V3, noise_table_samples=1000)
    with pytest.raises(ValueError, match="n_harmonics"):
        replace(SING_V3, n_harmonics=0)
    with pytest.raises(ValueError, match="architecture"):
        SingHarmonicConfig(architecture="conv")
    assert SING_V3.time_steps == 375 and SING_V3.preroll_steps == 0
