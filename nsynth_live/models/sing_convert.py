"""Convert SING's published weights (facebookresearch/SING, ``sing.th``) into an nsynth-live ``Sing``.

Facts about the authors' file (read from their code, commit 72054bd; nothing copied; see
``docs/model.md`` "SING's published weights"):

- ``sing/sequence/models.py`` downloads https://dl.fbaipublicfiles.com/sing/sing.th with sha256
  :data:`PUBLISHED_SHA256`; ``sing/train.py`` writes it with ``torch.save(sing.cpu(), path)``, a whole
  pickled ``nn.Module`` (class ``sing.sequence.models.SING``), and ``sing/generate.py`` reads it with
  a plain ``torch.load``. Their training checkpoints (``--checkpoint DIR``, ``DIR/sing.torch``) hold
  ``(epoch, state_dict)``. All three forms are read here.
- Tensor names (a ``state_dict`` of their ``SING``) and how they map onto ours:

  ==============================================  ==============================================
  theirs                                          ours
  ==============================================  ==============================================
  ``sequence_generator.tables.0.weight`` (I, 16)  ``sequence_generator.instrument_table.weight``
  ``sequence_generator.tables.1.weight`` (P, 8)   ``sequence_generator.pitch_table.weight``
  ``sequence_generator.tables.2.weight`` (6, 2)   ``sequence_generator.velocity_table.weight``:
                                                  rows 0, 1, 2, 4, 5 (see below)
  ``sequence_generator.time_table.weight`` (265,  ``sequence_generator.time_table.weight``
  4)
  ``sequence_generator.lstm.*_l{k}``              ``sequence_generator.lstm.*_l{k}`` (same
                                                  ``nn.LSTM`` names and gate order)
  ``sequence_generator.decoder.{weight,bias}``    ``sequence_generator.output.{weight,bias}``
  ``decoder.layers.0.{weight,bias}`` (C, D, 9)    ``decoder.conv.{weight,bias}``
  ``decoder.layers.2.*``, ``decoder.layers.4.*``  ``decoder.hidden.1.*``, ``decoder.hidden.3.*``
  ``decoder.layers.6.conv_tr.{weight,bias}``      ``decoder.synthesis.{weight,bias}``
  ``decoder.layers.6.window`` (1024,)             checked to be our squared periodic Hann window,
                                                  not stored (ours is computed)
  ==============================================  ==============================================

- Their tables are named and concatenated in sorted name order (instrument, pitch, velocity), then
  the time table: the LSTM input order of ours, so ``weight_ih_l0`` is copied as is.
- Both decoders multiply the stored transposed-conv kernel by the squared periodic Hann window at
  run time, so the stored kernel is copied as is.
- Velocity: ``sing/nsynth/__init__.py`` maps NSynth velocities 25, 50, 75, 100, 127 to rows
  0, 1, 2, 4, 5 (:data:`SING_VELOCITY_ROWS`; row 3 is never used) of a table with 1 + 5 = 6 rows.
  Our ``VelocityTable`` has one row per NSynth velocity, so rows 0, 1, 2, 4, 5 are taken: exact at
  those velocities (and ours interpolates between them, which theirs cannot).
- Instrument and pitch tables have 1 + the largest NSynth ``instrument`` id / MIDI ``pitch`` of
  their training metadata rows (row = id, row = MIDI note): the converted config takes both sizes
  from the file (:func:`sing_config_from_tensors`), so it can differ from ``SING_PAPER``.

Why a restricted unpickler: the published file is a pickled module, so loading it needs class
names from the authors' package (``sing.*``), which this project does not import (and ``torch.load``
with ``weights_only=True`` refuses). :func:`read_sing_file` first tries ``weights_only=True`` (enough
for state dicts and training checkpoints); for a pickled module it unpickles with
:class:`_StandInUnpickler`, which maps the authors' classes and ``torch.nn`` module classes to inert
stand-ins that only keep their pickled state (``_parameters``, ``_buffers``, ``_modules`` and plain
attributes), allows the few torch functions that rebuild tensors, and refuses every other global,
so the file cannot run code.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import json
import os
import pickle
import types
import warnings
from pathlib import Path
from typing import Mapping

import torch

from nsynth_live.functional.spectral import hann_squared_window
from nsynth_live.models.checkpoint import load_state_dict_checked
from nsynth_live.models.sing import Sing
from nsynth_live.models.sing_configs import SING_PAPER, SingConfig

PUBLISHED_URL = "https://dl.fbaipublicfiles.com/sing/sing.th"  # sing/sequence/models.py
PUBLISHED_SHA256 = "eda8a7ce66f1ccf31cdd34a920290d80aabf96584c4d53df866b744f2862dc1c"  # same place
CONVERTED_CONFIG_NAME = "sing_published"
# NSynth MIDI velocity -> row of their velocity table (sing/nsynth/__init__.py, _map_velocity).
SING_VELOCITY_ROWS = {25: 0, 50: 1, 75: 2, 100: 4, 127: 5}
SING_VELOCITY_TABLE_ROWS = 6  # 1 + the largest mapped value
SING_TABLE_NAMES = ("instrument", "pitch", "velocity")  # sorted(...) order of their lookup tables
# MIDI range written to the ONNX file when no NSynth metadata gives the trained one: the 88 piano
# keys NSynth covers (NSynth dataset page).
NSYNTH_PIANO_PITCH_RANGE_MIDI = (21, 108)

_SG, _DEC = "sequence_generator.", "decoder."


class SingConversionError(ValueError):
    """A file is not SING's published layout, or a tensor in it is missing or mis-shaped."""


# ---------------------------------------------------------------------------- reading their file
class _StandIn:
    """An object of a class we do not import (theirs, or a ``torch.nn`` module): keeps its state only."""

    pickled_name = "?"
    dump_patches = False  # read by torch.load when a legacy file's class source differs from ours

    def __new__(cls, *args, **kwargs):  # NEWOBJ calls cls.__new__(cls, *args)
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):  # a REDUCE with the class as callable
        self.__dict__["_reduce_args"] = args

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_state"] = state


def _no_backend():
    """Stands for ``torch.nn.backends.thnn._get_thnn_function_backend`` (torch 0.4 modules' ``_backend``)."""
    return None


def _stand_in_allowed(module: str) -> bool:
    return module == "sing" or module.startswith(("sing.", "torch.nn.modules.")) or module == "torch.backends.cudnn.rnn"


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,  # protocol 2 names builtins as Python 2 did
    ("__builtin__", "frozenset"): frozenset,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,  # torch 0.4: Parameter(data, requires_grad)
    ("torch.nn.backends.thnn", "_get_thnn_function_backend"): _no_backend,
}


class _RefusedGlobal(pickle.UnpicklingError):
    """The file names a function or class outside what a SING model file holds."""


class _StandInUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`_ALLOWED_GLOBALS`, torch dtypes and stand-in classes."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if _stand_in_allowed(module):
            stand_ins = self.__dict__.setdefault("_stand_ins", {})  # one class per pickled name and load
            if (module, name) not in stand_ins:
                stand_ins[(module, name)] = type(name, (_StandIn,), {"pickled_name": f"{module}.{name}"})
            return stand_ins[(module, name)]
        raise _RefusedGlobal(
            f"the file refers to {module}.{name}, which a SING model file does not contain; refusing to load it"
        )


def _restricted_load(file, **kwargs):
    return _StandInUnpickler(file, **kwargs).load()


# What torch.load uses of its pickle_module: Unpickler, load and __name__.
_STAND_IN_PICKLE = types.SimpleNamespace(__name__="nsynth_live_stand_in_pickle", Unpickler=_StandInUnpickler,
                                         load=_restricted_load)


@dataclasses.dataclass(frozen=True)
class SingFileContents:
    """What :func:`read_sing_file` found.

    Attributes
    ----------
    tensors : dict of str to torch.Tensor
        Their state-dict names -> tensors (CPU).
    attributes : dict of str to dict
        Module path (``""`` for the top) -> plain attributes of that module (``stride``,
        ``inputs``, ...), and ``"__class__"`` -> the pickled class name. Empty for state-dict files.
    form : str
        ``"module"`` (a pickled ``SING``), ``"state_dict"`` or ``"training_checkpoint"``.
    """

    tensors: dict
    attributes: dict
    form: str


def _plain(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return isinstance(value, (bool, int, float, str, type(None)))


def _flatten_module(obj: _StandIn, prefix: str, tensors: dict, attributes: dict, source: str) -> None:
    state = vars(obj)
    path = prefix[:-1]
    attributes[path] = {"__class__": obj.pickled_name,
                        **{k: v for k, v in state.items() if not k.startswith("_") and _plain(v)}}
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is None:
                continue
            if not isinstance(value, torch.Tensor):
                raise SingConversionError(f"{source}: {prefix}{name} is a {type(value).__name__}, not a tensor")
            tensors[prefix + name] = value.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, _StandIn):
            raise SingConversionError(f"{source}: submodule {prefix}{name} is a {type(child).__name__}, not a module")
        _flatten_module(child, f"{prefix}{name}.", tensors, attributes, source)


def read_sing_file(path: str | os.PathLike) -> SingFileContents:
    """Read the tensors of a SING file written by the authors' code, without importing it.

    Parameters
    ----------
    path : str or Path
        ``sing.th`` (a pickled ``SING`` module), a ``SING`` state dict, or their training
        checkpoint ``(epoch, state_dict)``.

    Returns
    -------
    SingFileContents

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    SingConversionError
        (a ValueError) if the file is not a torch file, is truncated or corrupt, refers to code
        other than model classes, or holds something else than a SING model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist; download SING's weights from {PUBLISHED_URL}")
    source = str(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # a pickled module (or a corrupt file): try the stand-in classes
        payload = None
    except Exception as error:  # torch raises many types for a truncated or foreign file
        raise SingConversionError(f"{source} is not a readable torch file (truncated or corrupt?): {error}") from error
    if payload is None:
        try:
            with warnings.catch_warnings():
                # legacy files carry each module class's source, which torch compares with the class found
                warnings.simplefilter("ignore")
                payload = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_STAND_IN_PICKLE)
        except _RefusedGlobal as error:
            raise SingConversionError(f"{source}: {error}") from None
        except Exception as error:
            raise SingConversionError(
                f"{source} is not a readable SING file (truncated or corrupt?): {error}") from error

    if isinstance(payload, _StandIn):
        tensors, attributes = {}, {}
        _flatten_module(payload, "", tensors, attributes, source)
        return SingFileContents(tensors, attributes, "module")
    form = "state_dict"
    if (isinstance(payload, tuple) and len(payload) == 2 and isinstance(payload[0], int)
            and isinstance(payload[1], Mapping)):
        payload, form = payload[1], "training_checkpoint"
    if isinstance(payload, Mapping) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return SingFileContents({str(k): v.detach() for k, v in payload.items()}, {}, form)
    raise SingConversionError(
        f"{source} holds a {type(payload).__name__}, not a SING model: expected their pickled SING module "
        f"(sing.th), its state dict or a training checkpoint (epoch, state_dict)"
    )


# ---------------------------------------------------------------------------- the mapping
def _require(tensors: Mapping[str, torch.Tensor], name: str, source: str, what: str) -> torch.Tensor:
    if name not in tensors:
        hint = ""
        if not any(k.startswith(_SG) for k in tensors) and any(k.startswith("encoder.") for k in tensors):
            hint = " (this looks like their autoencoder, ae.torch: convert the final SING model, sing.th)"
        raise SingConversionError(f"tensor {name!r} ({what}) is missing from {source}{hint}")
    return tensors[name]


def sing_config_from_tensors(tensors: Mapping[str, torch.Tensor], *, source: str = "the file",
                             attributes: Mapping[str, Mapping] | None = None) -> SingConfig:
    """Our config for a file of the authors' layout: ``SING_PAPER`` with the sizes read from the tensors.

    Sizes taken from the file: instrument, pitch, velocity and time table widths, instrument and
    pitch rows, LSTM hidden size and layers, embedding size, decoder channels and kernel. The rest
    (16 kHz, hop 256, window 1024, padding 2304) must agree with the file: the time table must have
    ``SING_PAPER.time_steps`` (265) rows and the transposed conv a 1024-sample kernel.

    Raises
    ------
    SingConversionError
        Naming the tensor or attribute that does not fit, with the value found and the one expected.
    """
    attributes = attributes or {}
    sg = attributes.get("sequence_generator", {})
    inputs = sg.get("inputs")
    if inputs is not None and list(inputs) != list(SING_TABLE_NAMES):
        raise SingConversionError(
            f"{source}: the sequence generator's lookup tables are {list(inputs)}, expected {list(SING_TABLE_NAMES)} "
            "(the published model's); this converter maps only those"
        )
    if _SG + "time_table.weight" not in tensors and _SG + "tables.0.weight" in tensors:
        raise SingConversionError(
            f"{source} has no time table (trained with --time-dim 0); nsynth-live's SING needs one: "
            "only models with a time table can be converted"
        )
    shapes = {}
    for index, table in enumerate(SING_TABLE_NAMES):
        name = f"{_SG}tables.{index}.weight"
        shapes[table] = tuple(_require(tensors, name, source, f"the {table} lookup table").shape)
    shapes["time"] = tuple(_require(tensors, _SG + "time_table.weight", source, "the time table").shape)
    for table, shape in shapes.items():
        if len(shape) != 2:
            raise SingConversionError(f"{source}: the {table} table has shape {list(shape)}, expected [rows, dims]")
    if shapes["velocity"][0] != SING_VELOCITY_TABLE_ROWS:
        raise SingConversionError(
            f"{source}: the velocity table has {shapes['velocity'][0]} rows, expected {SING_VELOCITY_TABLE_ROWS} "
            f"(the authors' code maps NSynth velocities {SING_VELOCITY_ROWS} to rows); a table of another "
            "layout cannot be mapped onto ours exactly"
        )
    hh = _require(tensors, _SG + "lstm.weight_hh_l0", source, "the LSTM's first layer")
    layers = 0
    while f"{_SG}lstm.weight_ih_l{layers}" in tensors:
        layers += 1
    output = _require(tensors, _SG + "decoder.weight", source, "the sequence generator's output layer")
    conv = _require(tensors, _DEC + "layers.0.weight", source, "the decoder's first conv")
    synthesis = _require(tensors, _DEC + "layers.6.conv_tr.weight", source, "the decoder's windowed transposed conv")
    if hh.dim() != 2 or output.dim() != 2 or conv.dim() != 3 or synthesis.dim() != 3:
        raise SingConversionError(
            f"{source}: unexpected ranks: lstm.weight_hh_l0 {list(hh.shape)}, decoder.weight {list(output.shape)}, "
            f"layers.0.weight {list(conv.shape)}, layers.6.conv_tr.weight {list(synthesis.shape)}"
        )
    window = SING_PAPER.window_length_samples
    if synthesis.shape[2] != window:
        raise SingConversionError(
            f"{source}: the transposed conv's kernel is {synthesis.shape[2]} samples, expected {window} "
            "(nsynth-live's SING has a 1024-sample window at a 256-sample hop)"
        )
    try:
        config = dataclasses.replace(
            SING_PAPER, name=CONVERTED_CONFIG_NAME,
            embedding_dims=int(output.shape[0]), conv_channels=int(conv.shape[0]),
            decoder_kernel_frames=int(conv.shape[2]), lstm_hidden=int(hh.shape[1]), lstm_layers=max(layers, 1),
            instrument_dims=shapes["instrument"][1], pitch_dims=shapes["pitch"][1],
            velocity_dims=shapes["velocity"][1], time_dims=shapes["time"][1],
            num_instruments=shapes["instrument"][0], num_pitches=shapes["pitch"][0],
        )
    except ValueError as error:
        raise SingConversionError(f"{source}: its sizes make no valid SingConfig: {error}") from None
    if shapes["time"][0] != config.time_steps:
        raise SingConversionError(
            f"{source}: the time table has {shapes['time'][0]} rows, expected {config.time_steps} (the frames of "
            "a 4 s note padded with 2304 samples each side, the authors' default --pad); other paddings do not convert"
        )
    _check_module_attributes(attributes, config, source)
    return config


def _check_module_attributes(attributes: Mapping[str, Mapping], config: SingConfig, source: str) -> None:
    """Where the file is a pickled module, its hop, padding and strides must be ours."""
    expected = {
        _DEC + "layers.6.conv_tr": {"stride": (config.hop_length_samples,),
                                    "padding": (config.decoder_padding_samples,),
                                    "output_padding": (0,), "dilation": (1,), "groups": 1},
        _DEC + "layers.0": {"stride": (1,), "padding": (0,), "dilation": (1,), "groups": 1},
        _DEC + "layers.2": {"stride": (1,), "padding": (0,), "dilation": (1,), "groups": 1},
        _DEC + "layers.4": {"stride": (1,), "padding": (0,), "dilation": (1,), "groups": 1},
        _SG + "lstm": {"bidirectional": False, "num_layers": config.lstm_layers},
        _SG[:-1]: {"length": config.time_steps},
    }
    for module, values in expected.items():
        found = attributes.get(module, {})
        for name, value in values.items():
            if name in found and _as_tuple(found[name]) != _as_tuple(value):
                raise SingConversionError(f"{source}: {module}.{name} is {found[name]!r}, expected {value!r}")


def _as_tuple(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def sing_tensor_table(config: SingConfig) -> dict[str, tuple[str | None, tuple[int, ...]]]:
    """Their tensor name -> (our state-dict key, or None for their window buffer; their shape).

    Parameters
    ----------
    config : SingConfig
        Sizes (from :func:`sing_config_from_tensors`).
    """
    c, d, k = config.conv_channels, config.embedding_dims, config.decoder_kernel_frames
    h = config.lstm_hidden
    table = {
        f"{_SG}tables.0.weight": (f"{_SG}instrument_table.weight", (config.num_instruments, config.instrument_dims)),
        f"{_SG}tables.1.weight": (f"{_SG}pitch_table.weight", (config.num_pitches, config.pitch_dims)),
        f"{_SG}tables.2.weight": (f"{_SG}velocity_table.weight", (SING_VELOCITY_TABLE_ROWS, config.velocity_dims)),
        f"{_SG}time_table.weight": (f"{_SG}time_table.weight", (config.time_steps, config.time_dims)),
        f"{_SG}decoder.weight": (f"{_SG}output.weight", (d, h)),
        f"{_SG}decoder.bias": (f"{_SG}output.bias", (d,)),
        f"{_DEC}layers.0.weight": (f"{_DEC}conv.weight", (c, d, k)),
        f"{_DEC}layers.0.bias": (f"{_DEC}conv.bias", (c,)),
        f"{_DEC}layers.2.weight": (f"{_DEC}hidden.1.weight", (c, c, 1)),
        f"{_DEC}layers.2.bias": (f"{_DEC}hidden.1.bias", (c,)),
        f"{_DEC}layers.4.weight": (f"{_DEC}hidden.3.weight", (c, c, 1)),
        f"{_DEC}layers.4.bias": (f"{_DEC}hidden.3.bias", (c,)),
        f"{_DEC}layers.6.conv_tr.weight": (f"{_DEC}synthesis.weight", (c, 1, config.window_length_samples)),
        f"{_DEC}layers.6.conv_tr.bias": (f"{_DEC}synthesis.bias", (1,)),
        f"{_DEC}layers.6.window": (None, (config.window_length_samples,)),
    }
    inputs = config.instrument_dims + config.pitch_dims + config.velocity_dims + config.time_dims
    for layer in range(config.lstm_layers):
        for kind, shape in (("weight_ih", (4 * h, inputs if layer == 0 else h)), ("weight_hh", (4 * h, h)),
                            ("bias_ih", (4 * h,)), ("bias_hh", (4 * h,))):
            name = f"lstm.{kind}_l{layer}"
            table[_SG + name] = (_SG + name, shape)
    return table


def convert_sing_tensors(tensors: Mapping[str, torch.Tensor], *, source: str = "the file",
                         attributes: Mapping[str, Mapping] | None = None) -> tuple[SingConfig, dict[str, torch.Tensor]]:
    """Our config and state dict from tensors named as the authors' ``SING`` (module docstring's table).

    Returns
    -------
    config : SingConfig
    state_dict : dict of str to torch.Tensor (float32)

    Raises
    ------
    SingConversionError
        On the first missing, unexpected or mis-shaped tensor (named, with both shapes), or a
        window that is not the squared periodic Hann window.
    """
    config = sing_config_from_tensors(tensors, source=source, attributes=attributes)
    table = sing_tensor_table(config)
    for name, (_, shape) in table.items():
        tensor = _require(tensors, name, source, f"expected shape {list(shape)}")
        if tuple(tensor.shape) != shape:
            raise SingConversionError(
                f"tensor {name!r} in {source} has shape {list(tensor.shape)}, expected {list(shape)} "
                f"(sizes read from the file: {_sizes(config)})"
            )
    unexpected = sorted(set(tensors) - set(table))
    if unexpected:
        raise SingConversionError(
            f"{source} has tensors that SING's published layout does not: {unexpected[:5]} (of {len(unexpected)}); "
            "is it another architecture (e.g. --ae-rewrite other than 2, a bidirectional LSTM)?"
        )
    window = tensors[_DEC + "layers.6.window"].double()
    ours = hann_squared_window(config.window_length_samples, dtype=torch.float64)
    if not torch.allclose(window, ours, atol=1e-6):
        raise SingConversionError(
            f"{source}: the transposed conv's window is not a squared periodic Hann window (largest difference "
            f"{(window - ours).abs().max().item():.3g}); only --ae-window hann with --ae-squared-window converts"
        )
    state_dict = {}
    for name, (key, _) in table.items():
        if key is None:
            continue
        tensor = tensors[name].detach().to(torch.float32)
        if name == f"{_SG}tables.2.weight":
            tensor = tensor[[SING_VELOCITY_ROWS[v] for v in config.velocities]]
        state_dict[key] = tensor.contiguous().clone()
    return config, state_dict


def _sizes(config: SingConfig) -> str:
    return (f"channels {config.conv_channels}, LSTM {config.lstm_layers} x {config.lstm_hidden}, "
            f"{config.num_instruments} instruments, {config.num_pitches} pitches")


# ---------------------------------------------------------------------------- instrument names
def read_nsynth_instrument_names(path: str | os.PathLike, num_instruments: int) -> tuple[list[str], tuple[int, int]]:
    """Names of the instrument table's rows from NSynth's ``examples.json`` (or ``.json.gz``).

    Row ``i`` is NSynth instrument id ``i`` (the ``instrument`` field); its name is that id's
    ``instrument_str``. Rows no note of the file uses are named ``unused_<i:04d>``.

    Parameters
    ----------
    path : str or Path
        ``nsynth-train/examples.json`` or the authors' ``sing/nsynth/examples.json.gz``.
    num_instruments : int
        Rows of the instrument table.

    Returns
    -------
    names : list of str, one per row
    pitch_range_midi : (lowest, highest) MIDI pitch of the file's notes

    Raises
    ------
    FileNotFoundError
    ValueError
        If the file is not NSynth metadata or an instrument id is beyond the table.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NSynth metadata {str(path)!r} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            notes = json.load(handle)
        ids = {}
        pitches = []
        for note in notes.values():
            ids.setdefault(int(note["instrument"]), str(note["instrument_str"]))
            pitches.append(int(note["pitch"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(
            f"{path} is not NSynth's examples.json (fields instrument, instrument_str, pitch): {error}") from None
    if not ids:
        raise ValueError(f"{path} holds no notes")
    beyond = sorted(i for i in ids if not 0 <= i < num_instruments)
    if beyond:
        raise ValueError(f"{path} has instrument ids {beyond[:5]} beyond the model's {num_instruments} table rows: "
                         "is it the metadata the model was trained on (nsynth-train)?")
    names = [ids.get(i, f"unused_{i:04d}") for i in range(num_instruments)]
    return names, (min(pitches), max(pitches))


def placeholder_instrument_names(num_instruments: int) -> list[str]:
    """``instrument_0000``, ... : names of the rows when no NSynth metadata is given (row = NSynth id)."""
    return [f"instrument_{i:04d}" for i in range(num_instruments)]


# ---------------------------------------------------------------------------- whole conversion
def convert_sing_checkpoint(path: str | os.PathLike, *, nsynth_metadata: str | os.PathLike | None = None
                            ) -> tuple[Sing, list[str]]:
    """Load the authors' SING file as our :class:`~nsynth_live.models.sing.Sing`.

    Parameters
    ----------
    path : str or Path
        ``sing.th`` (see :func:`read_sing_file` for the forms read).
    nsynth_metadata : str or Path, optional
        NSynth ``examples.json[.gz]`` naming the instrument rows; without it the rows are named
        ``instrument_<id:04d>``.

    Returns
    -------
    sing : Sing, eval mode, CPU, config :func:`sing_config_from_tensors` (name ``sing_published``)
    instrument_names : list of str, one per instrument table row

    Raises
    ------
    FileNotFoundError
    SingConversionError
        (a ValueError) naming what does not fit.
    """
    contents = read_sing_file(path)
    config, state_dict = convert_sing_tensors(contents.tensors, source=str(path), attributes=contents.attributes)
    sing = Sing(config)
    load_state_dict_checked(sing, state_dict)
    if nsynth_metadata is None:
        names = placeholder_instrument_names(config.num_instruments)
    else:
        names, _ = read_nsynth_instrument_names(nsynth_metadata, config.num_instruments)
    return sing.eval(), names


def onnx_pitch_range(config: SingConfig, nsynth_metadata: str | os.PathLike | None = None) -> tuple[int, int]:
    """MIDI range to store in the ONNX file: the metadata's pitch range, else the piano keys, within the table."""
    if nsynth_metadata is not None:
        low, high = read_nsynth_instrument_names(nsynth_metadata, config.num_instruments)[1]
    else:
        low, high = NSYNTH_PIANO_PITCH_RANGE_MIDI
    high = min(high, config.num_pitches - 1)
    return min(low, high), high

