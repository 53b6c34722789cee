import pytest
import torch

from nsynth_live.models.checkpoint import CheckpointError, load_sing, save_sing
from nsynth_live.models.sing import Sing, SingEncoder, SingStreamingStep, VelocityTable
from nsynth_live.models.sing_configs import SING_DEFAULT, SING_PAPER, SingConfig

SMALL = SingConfig(name="test", conv_channels=48, lstm_hidden=24, num_instruments=4)


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_lengths_follow_the_paper():
    cfg = SING_DEFAULT
    assert cfg.padded_samples == 68608
    assert cfg.time_steps == 265
    assert cfg.decoder_output_samples == 65024
    assert cfg.output_trim_samples == 512
    assert cfg.preroll_steps == 13
    torch.manual_seed(0)
    assert Sing(SMALL).generate(torch.zeros(2, 16), torch.tensor([60, 61]), torch.tensor([100.0, 50.0])).shape == (2, 64000)
    assert SingEncoder(SMALL)(torch.zeros(2, 68608)).shape == (2, 265, 128)


def test_paper_sizes():
    sing = Sing(SING_PAPER)
    assert count(sing.decoder) == pytest.approx(42.5e6, rel=0.01)
    assert count(sing.sequence_generator.lstm) == pytest.approx(21.1e6, rel=0.01)


@pytest.mark.parametrize("bad", [dict(conv_channels=0), dict(window_length_samples=1000), dict(decoder_kernel_frames=8),
                                 dict(velocities=(100, 50))])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        SingConfig(**bad)


def test_velocity_table_is_a_lookup_at_its_rows_and_interpolates_between():
    table = VelocityTable((25, 50, 75, 100, 127), 2)
    rows = table(torch.tensor([25.0, 50.0, 75.0, 100.0, 127.0]))
    assert torch.allclose(rows, table.weight)
    mid = table(torch.tensor([62.5]))[0]
    assert torch.allclose(mid, 0.5 * (table.weight[1] + table.weight[2]))
    assert torch.allclose(table(torch.tensor([1.0, 127.0]))[0], table.weight[0])  # clamped below the range


@pytest.mark.parametrize("voices", [1, 4])
def test_streaming_step_equals_full_forward(voices):
    torch.manual_seed(1)
    sing = Sing(SMALL).eval()
    inst = sing.instrument_embedding(torch.arange(voices) % 4)
    pitch, velocity = torch.arange(voices) + 48, torch.linspace(25, 127, voices)
    with torch.no_grad():
        full = sing(inst, pitch, velocity)
        step = SingStreamingStep(sing)
        state = tuple(step.initial_state(voices).values())
        hops = []
        for t in range(SMALL.time_steps):
            audio, *state = step(inst, pitch, velocity, torch.full((voices,), t), *state)
            hops.append(audio)
    pad = SMALL.decoder_padding_samples
    streamed = torch.cat(hops[SMALL.decoder_kernel_frames - 1:], dim=1)[:, pad:pad + SMALL.decoder_output_samples]
    assert torch.allclose(streamed, full, atol=1e-6)
    # The note starts at step preroll_steps: hop k of the note == generate()[256 k: 256 (k + 1)].
    note = sing.generate(inst, pitch, velocity)
    assert torch.allclose(hops[SMALL.preroll_steps], note[:, :256], atol=1e-6)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(2)
    sing = Sing(SMALL)
    names = [f"keyboard_acoustic_{i:03d}" for i in range(4)]
    save_sing(sing, names, tmp_path / "m.pt")
    loaded, loaded_names = load_sing(tmp_path / "m.pt")
    assert loaded_names == names
    for (k, v), (k2, v2) in zip(sing.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_checkpoint_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_sing(tmp_path / "missing.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_sing(tmp_path / "garbage.pt")
    sing = Sing(SMALL)
    save_sing(sing, ["a"] * 4, tmp_path / "m.pt")
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    data["format_version"] = 99
    torch.save(data, tmp_path / "v99.pt")
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_sing(tmp_path / "v99.pt")
    data["format_version"] = 1
    data["state_dict"]["decoder.conv.weight"] = torch.zeros(3, 3, 3)
    torch.save(data, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match=r"shape\.pt: tensor 'decoder\.conv\.weight' has shape \(3, 3, 3\), expected \(48, 128, 9\)"):
        load_sing(tmp_path / "shape.pt")
    del data["state_dict"]["decoder.conv.weight"]
    torch.save(data, tmp_path / "missing_tensor.pt")
    with pytest.raises(CheckpointError, match=r"tensor 'decoder\.conv\.weight' is missing; expected shape \(48, 128, 9\)"):
        load_sing(tmp_path / "missing_tensor.pt")


def test_a_crop_decodes_exactly_like_the_whole_note_there():
    from nsynth_live.models.sing import SingDecoder, crop_frames, decoder_target, pad_note

    torch.manual_seed(3)
    encoder, decoder = SingEncoder(SMALL), SingDecoder(SMALL)
    audio = torch.randn(2, 64000)
    padded = pad_note(audio, SMALL)
    with torch.no_grad():
        whole = decoder(encoder(padded))
        for start in (0, 50, SMALL.time_steps - 32):
            encoder_input, target = crop_frames(padded, torch.tensor([start, start]), 32, SMALL)
            crop = decoder(encoder(encoder_input))
            hop = SMALL.hop_length_samples
            assert crop.shape == target.shape == (2, 32 * hop - 2816)
            assert torch.allclose(crop, whole[:, hop * start: hop * start + crop.shape[1]], atol=1e-6)
            assert torch.equal(target, decoder_target(audio, SMALL)[:, hop * start: hop * start + crop.shape[1]])
