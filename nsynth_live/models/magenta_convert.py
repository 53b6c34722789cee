"""Convert Magenta's TF1 NSynth WaveNet checkpoint into an nsynth-live checkpoint.

Source of the layout: Magenta ``wavenet/h512_bo16.py`` and ``wavenet/masked.py``: every layer is a
variable scope ``<layer>`` with ``W`` of shape ``[1, K, C_in, C_out]`` and ``biases`` of shape
``[C_out]``; all 374 trainable tensors are top level. The released ``wavenet-ckpt.tar`` holds
``model.ckpt-200000.{index,data-*,meta}``: pass the prefix ``.../model.ckpt-200000``.

Mapping (a table, because our layer names are Magenta's): ``<layer>/W`` ->
``{encoder|decoder}.layers.<layer>.weight = W[0].transpose(2, 1, 0)`` (``[C_out, C_in, K]``, no kernel
flip: both are cross-correlations, oldest tap first); ``<layer>/biases`` -> ``...bias``.
The raw (non-EMA) variables are used by default, as Magenta's own generator restores them;
``use_ema=True`` reads the ``/ExponentialMovingAverage`` shadows instead.

Reading the checkpoint needs TensorFlow: ``pip install nsynth-live[tf]`` (imported lazily).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from nsynth_live.models.wavenet_ae import WaveNetAutoencoder, load_state_dict_checked
from nsynth_live.models.wavenet_configs import WaveNetAutoencoderConfig, get_wavenet_config

EMA_SUFFIX = "/ExponentialMovingAverage"  # tf.train.ExponentialMovingAverage shadow names


def magenta_variable_table(config: WaveNetAutoencoderConfig) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Magenta variable name -> (our state-dict key, Magenta shape) for every trainable tensor.

    Parameters
    ----------
    config : WaveNetAutoencoderConfig

    Returns
    -------
    dict
        ``{"ae_startconv/W": ("encoder.layers.ae_startconv.weight", (1, 3, 1, 128)), ...}``;
        374 entries for the Magenta size.
    """
    with torch.device("meta"):
        model = WaveNetAutoencoder(config)
    table = {}
    for key, tensor in model.state_dict().items():
        _, _, layer, kind = key.split(".")
        if kind == "weight":
            c_out, c_in, k = tensor.shape
            table[f"{layer}/W"] = (key, (1, k, c_in, c_out))
        else:
            table[f"{layer}/biases"] = (key, tuple(tensor.shape))
    return table


def convert_magenta_arrays(
    get_tensor: Callable[[str], np.ndarray] | Mapping[str, np.ndarray],
    *,
    config: WaveNetAutoencoderConfig,
    use_ema: bool = False,
    source: str = "checkpoint",
) -> dict[str, torch.Tensor]:
    """Our state dict from Magenta-named arrays.

    Parameters
    ----------
    get_tensor : callable or mapping
        ``name -> numpy array`` (a TF ``CheckpointReader.get_tensor`` or a dict). A missing name must
        raise ``KeyError`` (mapping) or any exception whose class name contains ``NotFound``.
    config : WaveNetAutoencoderConfig
        Sizes the checkpoint must have.
    use_ema : bool
        Read ``<name>/ExponentialMovingAverage`` instead of the raw variable.
    source : str
        Named in error messages.

    Returns
    -------
    dict of str to torch.Tensor (float32)

    Raises
    ------
    ValueError
        If a tensor is missing or mis-shaped, naming the tensor, the expected and the found shape.
    """
    if isinstance(get_tensor, Mapping):
        mapping = get_tensor

        def get_tensor(name):
            return mapping[name]

    state_dict = {}
    for name, (key, shape) in magenta_variable_table(config).items():
        stored_name = name + EMA_SUFFIX if use_ema else name
        try:
            array = np.asarray(get_tensor(stored_name))
        except Exception as error:  # KeyError from dicts, NotFoundError from TF readers
            if isinstance(error, KeyError) or "NotFound" in type(error).__name__:
                raise ValueError(
                    f"tensor {stored_name!r} is missing from {source}; expected shape {list(shape)}. "
                    "Is this the h512_bo16 checkpoint and the right --config?"
                ) from None
            raise
        if tuple(array.shape) != shape:
            raise ValueError(
                f"tensor {stored_name!r} in {source} has shape {list(array.shape)}, expected {list(shape)} "
                f"(config {config})"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if key.endswith(".weight"):
            tensor = tensor[0].permute(2, 1, 0).contiguous()  # [1, K, Cin, Cout] -> [Cout, Cin, K]
        state_dict[key] = tensor
    return state_dict


def read_magenta_checkpoint(prefix, *, config: WaveNetAutoencoderConfig | None = None,
                            use_ema: bool = False) -> WaveNetAutoencoder:
    """Load a Magenta TF1 checkpoint into a :class:`WaveNetAutoencoder`.

    Parameters
    ----------
    prefix : str or Path
        Checkpoint prefix, e.g. ``wavenet-ckpt/model.ckpt-200000`` (the ``.index`` file must exist).
    config : WaveNetAutoencoderConfig, optional
        Defaults to the ``magenta`` size.
    use_ema : bool
        Use the EMA shadow weights instead of the raw ones.

    Raises
    ------
    ImportError
        If TensorFlow is not installed (names the ``tf`` extra).
    FileNotFoundError
        If ``<prefix>.index`` does not exist.
    ValueError
        For missing or mis-shaped tensors.
    """
    prefix = str(prefix)
    if not Path(prefix + ".index").is_file():
        raise FileNotFoundError(
            f"no TF checkpoint at prefix {prefix!r} ({prefix}.index missing); pass the prefix without "
            "extension, e.g. wavenet-ckpt/model.ckpt-200000"
        )
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "reading Magenta checkpoints needs TensorFlow: pip install nsynth-live[tf] "
            "(or pip install tensorflow-cpu)"
        ) from error
    reader = tf.train.load_checkpoint(prefix)
    config = config or get_wavenet_config("magenta")
    model = WaveNetAutoencoder(config)
    state_dict = convert_magenta_arrays(reader.get_tensor, config=config, use_ema=use_ema, source=prefix)
    load_state_dict_checked(model, state_dict)
    return model.eval()


def convert_magenta_checkpoint(prefix, out_path, *, config: WaveNetAutoencoderConfig | None = None,
                               use_ema: bool = False, force: bool = False) -> Path:
    """Convert a Magenta checkpoint and write our versioned checkpoint atomically.

    Raises
    ------
    FileExistsError
        If ``out_path`` exists and ``force`` is false.
    """
    out_path = Path(out_path)
    if out_path.exists() and not force:
        raise FileExistsError(f"{str(out_path)!r} exists; pass --force (force=True) to overwrite it")
    model = read_magenta_checkpoint(prefix, config=config, use_ema=use_ema)
    return model.save(out_path, extra={"converted_from": str(prefix), "use_ema": bool(use_ema)})
