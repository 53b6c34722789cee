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
from nsynth_live.models.sing import Sing, SingReplay, SingStreamingStep
from nsynth_live.models.sing_harmonic import SingHarmonic, SingHarmonicReplay, SingHarmonicStep
from nsynth_live.runtime.sing_onnx import (
    NAME_KEY,
    ONNX_OPSET,
    REPLAY_INPUT_NAMES,
    SING_ONNX_FORMAT_VERSION,
    WEIGHTS_SHA256_KEY,
    graph_names,
    replay_path,
    weights_sha256,
)


def _step_and_replay(sing):
    """The step and replay modules of a SING (v1/v2) or a v3 model."""
    if isinstance(sing, SingHarmonic):
        return SingHarmonicStep(sing).eval(), SingHarmonicReplay(sing).eval()
    return SingStreamingStep(sing).eval(), SingReplay(sing).eval()


def export_sing_onnx(
    sing: Sing | SingHarmonic,
    instrument_names: Sequence[str],
    path: str | os.PathLike,
    *,
    pitch_min_midi: int = 36,
    pitch_max_midi: int = 84,
    name: str | None = None,
) -> None:
    """Export the streaming step of ``sing`` to a single ONNX file (written atomically), and its
    replay graph next to it (:func:`export_sing_replay_onnx`, ``<name>.replay.onnx``).

    The metadata carries ``name`` and ``weights_sha256`` (:func:`weights_sha256` of the written
    weights), which the loader checks.

    Parameters
    ----------
    sing : Sing or SingHarmonic
        Trained model (its instrument table rows become the stored instrument embeddings). A v3
        model (``SingHarmonic``) is exported with its own state (``runtime.sing_onnx.HARMONIC_STATE_NAMES``)
        and its config's ``architecture = "harmonic"`` in the metadata.
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
    step, _ = _step_and_replay(sing)
    input_names, output_names, _ = graph_names(config)
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
            step, example, tmp, input_names=list(input_names), output_names=list(output_names),
            dynamic_axes={name: {0: "voices"} for name in input_names + output_names},
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
    export_sing_replay_onnx(sing, replay_path(path), step_weights_sha256=metadata[WEIGHTS_SHA256_KEY])


def export_sing_replay_onnx(sing: Sing | SingHarmonic, path: str | os.PathLike, *, step_weights_sha256: str | None = None) -> None:
    """Export :class:`~nsynth_live.models.sing.SingReplay` of ``sing`` to ONNX (written atomically).

    The engine's crossfaded morph runs it to re-render a voice's last frames with a new instrument
    embedding (``docs/engine.md``). Its metadata names it (``model = sing-replay``), carries its own
    ``weights_sha256`` and, when given, the step graph's (``weights_sha256_of_step``), so the loader
    refuses a replay file of another model.
    """
    import onnx  # noqa: PLC0415

    _, replay = _step_and_replay(sing)
    voices, frames = 2, 16
    cfg = sing.config
    _, _, replay_outputs = graph_names(cfg)
    example = (
        sing.instrument_embedding(torch.zeros(voices, dtype=torch.long)).detach(),
        torch.full((voices,), 60, dtype=torch.long),
        torch.full((voices,), 100.0),
        torch.arange(frames)[None].expand(voices, -1).contiguous(),
        torch.zeros(voices, cfg.lstm_layers, cfg.lstm_hidden),
        torch.zeros(voices, cfg.lstm_layers, cfg.lstm_hidden),
    )
    axes = {name: {0: "voices"} for name in REPLAY_INPUT_NAMES + replay_outputs}
    axes["time_index"] = {0: "voices", 1: "frames"}
    with atomic_output(path) as tmp, torch.no_grad():
        torch.onnx.export(replay, example, tmp, input_names=list(REPLAY_INPUT_NAMES),
                          output_names=list(replay_outputs), dynamic_axes=axes,
                          opset_version=ONNX_OPSET, dynamo=False)
        model = onnx.load(tmp)
        metadata = {"format_version": str(SING_ONNX_FORMAT_VERSION), "model": "sing-replay",
                    WEIGHTS_SHA256_KEY: weights_sha256(model)}
        if step_weights_sha256 is not None:
            metadata[WEIGHTS_SHA256_KEY + "_of_step"] = step_weights_sha256
        del model.metadata_props[:]
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, tmp)
