"""Export SING's streaming step from PyTorch to the single-file ONNX model the runtime plays.

Needs torch (the ``train`` extra); :mod:`nsynth_live.runtime.sing_onnx` reads and plays the file
without it. The file's layout (inputs, outputs, state, metadata) is described there.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import torch

from nsynth_live.fileio import atomic_output
from nsynth_live.models.sing import Sing, SingStreamingStep
from nsynth_live.runtime.sing_onnx import (
    INPUT_NAMES,
    NAME_KEY,
    ONNX_OPSET,
    OUTPUT_NAMES,
    SING_ONNX_FORMAT_VERSION,
    WEIGHTS_SHA256_KEY,
    weights_sha256,
)


def export_sing_onnx(
    sing: Sing,
    instrument_names: Sequence[str],
    path: str | os.PathLike,
    *,
    pitch_min_midi: int = 36,
    pitch_max_midi: int = 84,
    name: str | None = None,
) -> None:
    """Export the streaming step of ``sing`` to a single ONNX file (written atomically).

    The metadata carries ``name`` and ``weights_sha256`` (:func:`weights_sha256` of the written
    weights), which the loader checks.

    Parameters
    ----------
    sing : Sing
        Trained model (its instrument table rows become the stored instrument embeddings).
    instrument_names : sequence of str
        Name of each instrument table row.
    pitch_min_midi, pitch_max_midi : int
        The MIDI range the model was trained on (stored for the engine).
    name : str, optional
        The model's name in the metadata; default ``sing.config.name``.

    Raises
    ------
    ValueError
        If ``instrument_names`` does not match the instrument table.
    """
    config = sing.config
    if len(instrument_names) != config.num_instruments:
        raise ValueError(f"{len(instrument_names)} instrument names for {config.num_instruments} table rows")
    step = SingStreamingStep(sing).eval()
    voices = 2
    state = step.initial_state(voices)
    example = (
        sing.instrument_embedding(torch.zeros(voices, dtype=torch.long)).detach(),
        torch.full((voices,), 60, dtype=torch.long),
        torch.full((voices,), 100.0),
        torch.zeros(voices, dtype=torch.long),
        *state.values(),
    )
    import onnx  # noqa: PLC0415

    with atomic_output(path) as tmp, torch.no_grad():
        torch.onnx.export(
            step, example, tmp, input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: {0: "voices"} for name in INPUT_NAMES + OUTPUT_NAMES},
            opset_version=ONNX_OPSET, dynamo=False,
        )

        model = onnx.load(tmp)
        embeddings = sing.sequence_generator.instrument_table.weight.detach().cpu().numpy()
        metadata = {
            "format_version": str(SING_ONNX_FORMAT_VERSION),
            "model": "sing-streaming",
            "config": json.dumps(config.to_dict()),
            "instrument_names": json.dumps(list(instrument_names)),
            "instrument_embeddings": json.dumps(embeddings.astype(float).round(7).tolist()),
            "pitch_min_midi": str(pitch_min_midi),
            "pitch_max_midi": str(pitch_max_midi),
            NAME_KEY: config.name if name is None else str(name),
            WEIGHTS_SHA256_KEY: weights_sha256(model),
        }
        del model.metadata_props[:]
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, tmp)
