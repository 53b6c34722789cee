"""Conversion of SING's published weights (facebookresearch/SING): files written here with the
authors' layout (their module classes, tensor names, shapes and ``torch.save`` of the whole model, at
a small size) from random tensors, converted, and compared with reference computations written from
the raw tensors (numpy for the decoder, ``torch.nn.LSTM`` for the sequence generator)."""

from __future__ import annotations

import contextlib
import gzip
import json
import pickle
import runpy
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nsynth_live.models.checkpoint import load_sing
from nsynth_live.models.sing_convert import (
    SING_VELOCITY_ROWS,
    SingConversionError,
    convert_sing_checkpoint,
    read_sing_file,
)

REPO = Path(__file__).resolve().parents[2]
convert_cli = runpy.run_path(str(REPO / "export" / "convert_sing_checkpoint.py"))["main"]

# Small sizes of the authors' architecture (theirs: 4096 channels, LSTM 3 x 1024).
CHANNELS, HIDDEN, LAYERS, EMBEDDING = 8, 12, 3, 128
CARDINALITIES = {"instrument": 5, "pitch": 121, "velocity": 6}  # 1 + the largest id / MIDI pitch / mapped velocity
DIMENSIONS = {"instrument": 16, "pitch": 8, "velocity": 2}
TIME_STEPS, TIME_DIMS = 265, 4
HOP, WINDOW, CONTEXT = 256, 1024, 9


# ---------------------------------------------------------------------------- their layout
def _their_classes() -> dict[str, dict[str, type]]:
    """Stand-ins for the authors' classes with their module paths, attribute names and submodule
    layout (sing/ae/models.py, sing/ae/utils.py, sing/sequence/models.py), written from those facts."""

    class WindowedConvTranpose1d(nn.Module):  # their spelling
        def __init__(self, conv_tr, window):
            super().__init__()
            self.window_name = "hann**2"
            self.register_buffer("window", window)
            self.conv_tr = conv_tr

    class ConvolutionalDecoder(nn.Module):
        def __init__(self, channels, dimension, context_size, kernel_size, stride):
            super().__init__()
            conv_tr = nn.ConvTranspose1d(channels, 1, kernel_size, stride=stride, padding=kernel_size - stride)
            self.layers = nn.Sequential(
                nn.Conv1d(dimension, channels, context_size), nn.ReLU(),
                nn.Conv1d(channels, channels, 1), nn.ReLU(),
                nn.Conv1d(channels, channels, 1), nn.ReLU(),
                WindowedConvTranpose1d(conv_tr, torch.hann_window(kernel_size) ** 2),
            )
            self.context_size, self.stride, self.kernel_size = context_size, stride, kernel_size
            self.strip = kernel_size - stride + (context_size - 1) * stride // 2

    class SequenceGenerator(nn.Module):
        def __init__(self, embeddings, length, time_dimension, output_dimension, hidden_size, num_layers):
            super().__init__()
            self.tables, self.inputs = nn.ModuleList(), []
            for name, (cardinality, dimension) in sorted(embeddings.items()):
                self.inputs.append(name)
                self.tables.append(nn.Embedding(cardinality, dimension))
            self.time_table = nn.Embedding(length, time_dimension)
            self.length = length
            inputs = time_dimension + sum(d for _, d in embeddings.values())
            self.lstm = nn.LSTM(input_size=inputs, hidden_size=hidden_size, num_layers=num_layers)
            self.decoder = nn.Linear(hidden_size, output_dimension)

    class SING(nn.Module):
        def __init__(self, sequence_generator, decoder):
            super().__init__()
            self.sequence_generator = sequence_generator
            self.decoder = decoder

    classes = {"sing.ae.utils": [WindowedConvTranpose1d], "sing.ae.models": [ConvolutionalDecoder],
               "sing.sequence.models": [SequenceGenerator, SING]}
    for module, members in classes.items():
        for cls in members:
            cls.__module__, cls.__qualname__ = module, cls.__name__
    return {module: {cls.__name__: cls for cls in members} for module, members in classes.items()}


@contextlib.contextmanager
def their_package():
    """The authors' classes importable as ``sing.*`` for pickling, removed afterwards."""
    classes = _their_classes()
    modules = {name: types.ModuleType(name) for name in ("sing", "sing.ae", "sing.sequence", *classes)}
    for module, members in classes.items():
        for name, cls in members.items():
            setattr(modules[module], name, cls)
    assert not any(name in sys.modules for name in modules), "a real 'sing' package is imported"
    sys.modules.update(modules)
    try:
        yield {name: cls for members in classes.values() for name, cls in members.items()}
    finally:
        for name in modules:
            sys.modules.pop(name, None)


def make_their_model(seed: int = 0, *, classes) -> nn.Module:
    torch.manual_seed(seed)
    embeddings = {name: (CARDINALITIES[name], DIMENSIONS[name]) for name in ("velocity", "instrument", "pitch")}
    generator = classes["SequenceGenerator"](embeddings, TIME_STEPS, TIME_DIMS, EMBEDDING, HIDDEN, LAYERS)
    decoder = classes["ConvolutionalDecoder"](CHANNELS, EMBEDDING, CONTEXT, WINDOW, HOP)
    model = classes["SING"](generator, decoder)
    with torch.no_grad():  # random everywhere, at scales that keep the ReLUs and the LSTM gates busy
        for name, tensor in model.named_parameters():
            tensor.copy_(torch.randn_like(tensor) * (0.5 if "tables" in name or "time_table" in name else 0.2))
    return model


class _Torch04Pickler(pickle.Pickler):
    """Pickles parameters as torch 0.4 did: ``Parameter(data, requires_grad)``."""

    def reducer_override(self, obj):
        if type(obj) is nn.Parameter:
            return nn.Parameter, (obj.data, obj.requires_grad)
        return NotImplemented


class _Thnn:
    """A torch 0.4 module's ``_backend``: pickled as a call of ``torch.nn.backends.thnn._get_thnn_function_backend``."""

    def __reduce__(self):
        from torch.nn.backends.thnn import _get_thnn_function_backend

        return _get_thnn_function_backend, ()


TORCH04_PICKLE = types.SimpleNamespace(__name__="pickle", Pickler=_Torch04Pickler, Unpickler=pickle.Unpickler,
                                       load=pickle.load, dump=pickle.dump)
FORMATS = ("module", "module_torch04_legacy", "state_dict", "training_checkpoint")


def _set_tensors(model: nn.Module, raw: dict) -> None:
    """Put ``raw`` into the module's parameters and buffers as they are (any shape; a missing name is
    removed from the module; a new name becomes a parameter of the module its prefix names)."""
    for name in set(model.state_dict()) | set(raw):
        owner_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        group = owner._buffers if leaf in owner._buffers else owner._parameters
        if name in raw:
            group[leaf] = raw[name] if group is owner._buffers else nn.Parameter(raw[name])
        else:
            del group[leaf]


def write_their_file(path: Path, form: str = "module", seed: int = 0, edit=None) -> dict[str, torch.Tensor]:
    """Write a SING file as the authors' code does (``form``: :data:`FORMATS`); return its raw tensors.

    ``edit(state_dict)`` changes the tensors first (for the error cases).
    """
    with their_package() as classes:
        model = make_their_model(seed, classes=classes)
        raw = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        if edit is not None:
            edit(raw)
        if form == "module":
            _set_tensors(model, raw)
            torch.save(model, path)  # sing/train.py: torch.save(sing.cpu(), path)
        elif form == "module_torch04_legacy":  # the pre-1.6 file layout of 2018, parameters as torch 0.4 pickled them
            _set_tensors(model, raw)
            for module in model.modules():
                module._backend = _Thnn()
            torch.save(model, path, pickle_module=TORCH04_PICKLE, _use_new_zipfile_serialization=False)
        elif form == "state_dict":
            torch.save(raw, path)
        elif form == "training_checkpoint":  # sing/fondation/utils.py save_checkpoint: (epoch, state_dict)
            torch.save((20, raw), path)
        else:
            raise ValueError(form)
    return raw


# ---------------------------------------------------------------------------- references
def hann_squared(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)) ** 2  # periodic Hann, squared


def reference_decoder(raw: dict, embeddings: np.ndarray) -> np.ndarray:
    """Their ConvolutionalDecoder on ``embeddings`` (dims, frames), in float64 numpy: conv (kernel 9) and
    two 1x1 convs with ReLUs, then one windowed 1024-sample atom per frame, overlap-added at a hop of
    256, with the transposed conv's 768 samples of padding cut at both ends."""
    p = {name: tensor.double().numpy() for name, tensor in raw.items()}
    frames = np.lib.stride_tricks.sliding_window_view(embeddings, CONTEXT, axis=1)  # (dims, frames - 8, 9)
    h = np.einsum("cdk,dtk->ct", p["decoder.layers.0.weight"], frames) + p["decoder.layers.0.bias"][:, None]
    h = np.maximum(h, 0)  # (channels, frames - 8)
    for layer in (2, 4):
        h = np.maximum(p[f"decoder.layers.{layer}.weight"][:, :, 0] @ h + p[f"decoder.layers.{layer}.bias"][:, None], 0)
    atoms = (p["decoder.layers.6.conv_tr.weight"][:, 0, :] * hann_squared(WINDOW)).T @ h  # (1024, frames - 8)
    out = np.zeros((atoms.shape[1] - 1) * HOP + WINDOW)
    for t in range(atoms.shape[1]):
        out[t * HOP: t * HOP + WINDOW] += atoms[:, t]
    pad = WINDOW - HOP
    return out[pad: len(out) - pad] + p["decoder.layers.6.conv_tr.bias"][0]


def reference_embeddings(raw: dict, instrument: int, pitch_midi: int, velocity: int) -> np.ndarray:
    """Their sequence generator: table rows (instrument, pitch, velocity row of NSynth's mapping, then
    the time row) concatenated per frame into ``torch.nn.LSTM`` (time first) on the raw weights, then
    the output layer. Returns (dims, frames) float64."""
    lstm = nn.LSTM(sum(DIMENSIONS.values()) + TIME_DIMS, HIDDEN, LAYERS).double()
    lstm.load_state_dict({k[len("sequence_generator.lstm."):]: v.double() for k, v in raw.items()
                          if k.startswith("sequence_generator.lstm.")})
    tables = [raw[f"sequence_generator.tables.{i}.weight"].double() for i in range(3)]
    static = torch.cat([tables[0][instrument], tables[1][pitch_midi], tables[2][SING_VELOCITY_ROWS[velocity]]])
    time = raw["sequence_generator.time_table.weight"].double()
    x = torch.cat([static.expand(TIME_STEPS, -1), time], dim=1)[:, None, :]  # (time, batch 1, 30)
    with torch.no_grad():
        out, _ = lstm(x)
        output_weight, output_bias = (raw[f"sequence_generator.decoder.{k}"].double() for k in ("weight", "bias"))
        embeddings = out[:, 0] @ output_weight.T + output_bias
    return embeddings.T.numpy()


# ---------------------------------------------------------------------------- conversion
@pytest.mark.parametrize("form", FORMATS)
def test_every_tensor_lands_where_the_reference_computations_say(tmp_path, form):
    path = tmp_path / "sing.th"
    raw = write_their_file(path, form)
    assert "sing" not in sys.modules  # read without the authors' classes
    sing, names = convert_sing_checkpoint(path)
    cfg = sing.config
    assert (cfg.conv_channels, cfg.lstm_hidden, cfg.lstm_layers, cfg.num_instruments, cfg.num_pitches) == (
        CHANNELS, HIDDEN, LAYERS, CARDINALITIES["instrument"], CARDINALITIES["pitch"])
    assert names == [f"instrument_{i:04d}" for i in range(5)]

    instrument, pitch, velocities = 3, 60, (25, 100, 127)
    with torch.no_grad():
        embeddings, _ = sing.sequence_generator(sing.instrument_embedding(torch.full((3,), instrument)),
                                                torch.full((3,), pitch), torch.tensor(velocities, dtype=torch.float32))
        notes = sing(sing.instrument_embedding(torch.full((3,), instrument)), torch.full((3,), pitch),
                     torch.tensor(velocities, dtype=torch.float32))
    for i, velocity in enumerate(velocities):
        expected = reference_embeddings(raw, instrument, pitch, velocity)
        np.testing.assert_allclose(embeddings[i].numpy().T, expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(notes[i].numpy(), reference_decoder(raw, expected), rtol=1e-4, atol=1e-4)

    # the decoder alone, on a random embedding sequence
    rng = np.random.default_rng(7)
    sequence = rng.normal(0, 1, (EMBEDDING, 30))
    with torch.no_grad():
        decoded = sing.decoder(torch.from_numpy(sequence.T[None]).float())[0].numpy()
    assert decoded.shape == ((30 - CONTEXT + 2) * HOP - WINDOW,)  # their ConvolutionalDecoder.wav_length
    np.testing.assert_allclose(decoded, reference_decoder(raw, sequence), rtol=1e-4, atol=1e-4)


def test_velocity_rows_are_nsynths_and_row_3_is_dropped(tmp_path):
    path = tmp_path / "sing.th"
    raw = write_their_file(path)
    sing, _ = convert_sing_checkpoint(path)
    theirs = raw["sequence_generator.tables.2.weight"]
    assert torch.equal(sing.sequence_generator.velocity_table.weight.detach(), theirs[[0, 1, 2, 4, 5]])
    assert SING_VELOCITY_ROWS == {25: 0, 50: 1, 75: 2, 100: 4, 127: 5}


def test_a_pickled_module_keeps_its_attributes_and_class_names(tmp_path):
    path = tmp_path / "sing.th"
    write_their_file(path, "module_torch04_legacy")
    contents = read_sing_file(path)
    assert contents.form == "module"
    assert contents.attributes[""]["__class__"] == "sing.sequence.models.SING"
    assert contents.attributes["sequence_generator"]["inputs"] == ["instrument", "pitch", "velocity"]
    assert contents.attributes["decoder.layers.6.conv_tr"]["stride"] == (256,)
    assert contents.attributes["decoder.layers.6"]["__class__"] == "sing.ae.utils.WindowedConvTranpose1d"


def test_nsynth_metadata_names_the_rows(tmp_path):
    path = tmp_path / "sing.th"
    write_their_file(path, "state_dict")
    notes = {f"{name}-{pitch:03d}-100": {"instrument": i, "instrument_str": name, "pitch": pitch}
             for i, name in ((0, "bass_synthetic_033"), (2, "organ_electronic_007")) for pitch in (30, 96)}
    metadata = tmp_path / "examples.json.gz"
    with gzip.open(metadata, "wt") as handle:
        json.dump(notes, handle)
    _, names = convert_sing_checkpoint(path, nsynth_metadata=metadata)
    assert names == ["bass_synthetic_033", "unused_0001", "organ_electronic_007", "unused_0003", "unused_0004"]
    notes["x-030-100"] = {"instrument": 9, "instrument_str": "x", "pitch": 30}
    (tmp_path / "examples.json").write_text(json.dumps(notes))
    with pytest.raises(ValueError, match=r"instrument ids \[9\] beyond the model's 5 table rows"):
        convert_sing_checkpoint(path, nsynth_metadata=tmp_path / "examples.json")


# ---------------------------------------------------------------------------- errors
def _drop(name):
    return lambda raw: raw.pop(name)


def _reshape(name, shape):
    return lambda raw: raw.__setitem__(name, torch.zeros(shape))


@pytest.mark.parametrize("form", ["module", "state_dict"])
@pytest.mark.parametrize("edit, message", [
    (_drop("decoder.layers.4.bias"), r"tensor 'decoder.layers.4.bias' \(expected shape \[8\]\) is missing"),
    (_drop("sequence_generator.lstm.weight_hh_l2"),
     r"'sequence_generator.lstm.weight_hh_l2' \(expected shape \[48, 12\]\) is missing"),
    (_reshape("decoder.layers.2.weight", (8, 8, 3)),
     r"'decoder.layers.2.weight' .* has shape \[8, 8, 3\], expected \[8, 8, 1\]"),
    (_reshape("sequence_generator.lstm.weight_ih_l1", (48, 30)),
     r"'sequence_generator.lstm.weight_ih_l1' .* has shape \[48, 30\], expected \[48, 12\]"),
    (_reshape("sequence_generator.tables.2.weight", (5, 2)), r"velocity table has 5 rows, expected 6"),
    (_reshape("sequence_generator.time_table.weight", (257, 4)), r"time table has 257 rows, expected 265"),
    (_reshape("decoder.layers.6.conv_tr.weight", (8, 1, 512)), r"kernel is 512 samples, expected 1024"),
    (lambda raw: raw.__setitem__("decoder.layers.6.window", torch.hann_window(WINDOW)),
     r"window is not a squared periodic Hann window"),
    (lambda raw: raw.__setitem__("decoder.layers.6.conv_tr.scale", torch.zeros(1)),
     r"does not: \['decoder.layers.6.conv_tr.scale'\]"),
])
def test_mismatched_files_name_the_tensor(tmp_path, form, edit, message):
    path = tmp_path / "sing.th"
    write_their_file(path, form, edit=edit)
    with pytest.raises(SingConversionError, match=message):
        convert_sing_checkpoint(path)


def test_their_autoencoder_is_recognised(tmp_path):
    path = tmp_path / "ae.torch"
    torch.save((50, {"encoder.layers.0.conv.weight": torch.zeros(8, 1, 1024),
                     "decoder.layers.0.weight": torch.zeros(8, 128, 9)}), path)
    with pytest.raises(SingConversionError, match="looks like their autoencoder"):
        convert_sing_checkpoint(path)


@pytest.mark.parametrize("form", ["module", "module_torch04_legacy", "state_dict"])
def test_truncated_files_are_refused(tmp_path, form):
    path = tmp_path / "sing.th"
    write_their_file(path, form)
    data = path.read_bytes()
    for size in (len(data) // 2, len(data) - 100, 10):
        path.write_bytes(data[:size])
        with pytest.raises(SingConversionError, match=r"not a readable (torch|SING) file \(truncated or corrupt\?\)"):
            convert_sing_checkpoint(path)


def test_files_that_are_not_sing_models_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    with pytest.raises(SingConversionError, match="not a readable"):
        convert_sing_checkpoint(text)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(SingConversionError, match="holds a Tensor, not a SING model"):
        convert_sing_checkpoint(tensor)
    with pytest.raises(FileNotFoundError, match="dl.fbaipublicfiles.com/sing/sing.th"):
        convert_sing_checkpoint(tmp_path / "missing.th")


class _Payload:
    """An object whose unpickling would delete a file."""

    def __init__(self, victim):
        self.victim = str(victim)

    def __reduce__(self):
        import os

        return os.remove, (self.victim,)


def test_a_file_that_would_run_code_is_refused_without_running_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    path = tmp_path / "sing.th"
    with their_package() as classes:
        model = make_their_model(classes=classes)
        model.decoder.payload = _Payload(victim)  # a plain attribute of a pickled module
        torch.save(model, path)
    with pytest.raises(SingConversionError, match=r"refers to \w+\.remove, .*refusing to load it"):
        convert_sing_checkpoint(path)
    assert victim.read_text() == "keep me"


# ---------------------------------------------------------------------------- the command
def test_the_command_writes_a_checkpoint_and_refuses_to_overwrite_without_force(tmp_path, capsys):
    source = tmp_path / "sing.th"
    write_their_file(source, "module_torch04_legacy")
    out = tmp_path / "models" / "sing_published.pt"
    assert convert_cli([str(source), str(out)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "not the published sing.th" in printed and f"wrote {out}" in printed
    sing, names = load_sing(out)
    converted, _ = convert_sing_checkpoint(source)
    assert names == [f"instrument_{i:04d}" for i in range(5)] and sing.config == converted.config
    for key, tensor in converted.state_dict().items():
        assert torch.equal(sing.state_dict()[key], tensor), key
    assert [p.name for p in out.parent.iterdir()] == ["sing_published.pt"]  # no temporary left

    before = out.read_bytes()
    assert convert_cli([str(source), str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--force" in err
    assert out.read_bytes() == before

    write_their_file(source, "state_dict", seed=1)
    assert convert_cli([str(source), str(out), "--force"]) == 0
    assert out.read_bytes() != before

    bad = tmp_path / "bad.th"
    bad.write_bytes(b"\x80\x02not a model")
    assert convert_cli([str(bad), str(tmp_path / "x.pt")]) == 2
    assert "not a readable" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()


def test_the_command_refuses_an_existing_onnx_file_before_reading(tmp_path, capsys):
    out, onnx_path = tmp_path / "m.pt", tmp_path / "m.onnx"
    (tmp_path / "m.replay.onnx").write_bytes(b"keep me")
    assert convert_cli([str(tmp_path / "no-such.th"), str(out), "--onnx", str(onnx_path)]) == 2
    err = capsys.readouterr().err
    assert "m.replay.onnx exists" in err and "--force" in err
    assert not out.exists()


@pytest.mark.slow  # two ONNX exports and an ONNX Runtime session (2 s on an idle machine)
def test_the_command_exports_onnx_that_plays_like_pytorch(tmp_path, capsys):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    source = tmp_path / "sing.th"
    write_their_file(source)
    out, onnx_path = tmp_path / "m.pt", tmp_path / "m.onnx"
    assert convert_cli([str(source), str(out), "--onnx", str(onnx_path)]) == 0, capsys.readouterr().err
    assert (tmp_path / "m.replay.onnx").is_file()
    sing, _ = load_sing(out)
    from nsynth_live.models.sing import SingStreamingStep

    step = SingStreamingStep(sing)
    inputs = {"instrument_embedding": sing.instrument_embedding(torch.tensor([1, 4])).detach(),
              "pitch_midi": torch.tensor([60, 120]), "velocity": torch.tensor([25.0, 127.0]),
              "time_index": torch.tensor([9, 30]),
              **{k: torch.randn_like(v) for k, v in step.initial_state(2).items()}}
    with torch.no_grad():
        expected = step(*inputs.values())
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in inputs.items()})
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-4, atol=1e-4)


def test_the_command_never_writes_over_its_input(tmp_path):
    from nsynth_live.cli.convert_sing_checkpoint import main

    source = tmp_path / "sing.th"
    source.write_bytes(b"their weights")
    assert main([str(source), str(source), "--force"]) == 2
    assert source.read_bytes() == b"their weights"
