"""SING as a streaming ONNX graph: export from PyTorch, and an ONNX Runtime synth for the engine.

The graph is :class:`nsynth_live.models.sing.SingStreamingStep`: one 256-sample hop for a batch of
voices (axis 0 of every input and output). Inputs: ``instrument_embedding`` (voices, 16) float32,
``pitch_midi`` (voices,) int64, ``velocity`` (voices,) float32, ``time_index`` (voices,) int64, and the
state ``lstm_h``, ``lstm_c`` (voices, layers, hidden), ``context`` (voices, 8, embedding_dims),
``overlap`` (voices, 768). Outputs: ``audio`` (voices, 256) and ``next_<state>`` for each state input.
The file's metadata holds the format version, the config, the instrument names and their
embeddings, so one ``.onnx`` file is a whole playable model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from nsynth_live.fileio import atomic_output
from nsynth_live.models.sing import Sing, SingStreamingStep
from nsynth_live.models.sing_configs import SingConfig
from nsynth_live.runtime.protocol import State, StreamSpec

SING_ONNX_FORMAT_VERSION = 1
ONNX_OPSET = 17
STATE_NAMES = ("lstm_h", "lstm_c", "context", "overlap")
INPUT_NAMES = ("instrument_embedding", "pitch_midi", "velocity", "time_index") + STATE_NAMES
OUTPUT_NAMES = ("audio",) + tuple(f"next_{name}" for name in STATE_NAMES)


class ModelFileError(ValueError):
    """A model file is missing, corrupt, or not a streaming SING model this version can read."""


def export_sing_onnx(
    sing: Sing,
    instrument_names: Sequence[str],
    path: str | os.PathLike,
    *,
    pitch_min_midi: int = 36,
    pitch_max_midi: int = 84,
) -> None:
    """Export the streaming step of ``sing`` to a single ONNX file (written atomically).

    Parameters
    ----------
    sing : Sing
        Trained model (its instrument table rows become the stored instrument embeddings).
    instrument_names : sequence of str
        Name of each instrument table row.
    pitch_min_midi, pitch_max_midi : int
        The MIDI range the model was trained on (stored for the engine).

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
        }
        del model.metadata_props[:]
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, tmp)


def _import_onnxruntime():
    try:
        import onnxruntime  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(
            "onnxruntime is not installed: pip install 'nsynth-live[cpu]' (or '[gpu]' on a CUDA machine)"
        ) from exc
    return onnxruntime


class SingOnnxSynth:
    """A streaming SING model run by ONNX Runtime; implements ``StreamingSynth``.

    Parameters
    ----------
    path : path
        A ``.onnx`` file written by :func:`export_sing_onnx`.
    intra_op_threads : int
        ONNX Runtime threads for one step (1-2 for audio); spinning is disabled so idle threads do
        not steal CPU from the audio callback.
    providers : sequence of str, optional
        ONNX Runtime execution providers; default: CUDA when onnxruntime-gpu sees a GPU, else CPU.

    Raises
    ------
    ModelFileError
        If the file is missing, not an ONNX model, of an unknown format version or lacks metadata.
    """

    def __init__(self, path: str | os.PathLike, *, intra_op_threads: int = 1, providers: Sequence[str] | None = None):
        ort = _import_onnxruntime()
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"model file {path} does not exist; train one with 'python export/train_sing.py' or pass --model")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
            raise ModelFileError(f"model file {path} is not a readable ONNX model: {exc}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("model") != "sing-streaming":
            raise ModelFileError(f"model file {path} is not a streaming SING model (metadata model={meta.get('model')!r})")
        if meta.get("format_version") != str(SING_ONNX_FORMAT_VERSION):
            raise ModelFileError(
                f"model file {path} has format_version {meta.get('format_version')!r}; this nsynth-live reads "
                f"{SING_ONNX_FORMAT_VERSION}: re-export it with this version"
            )
        try:
            self.config = SingConfig.from_dict(json.loads(meta["config"]))
            names = tuple(json.loads(meta["instrument_names"]))
            self._embeddings = np.asarray(json.loads(meta["instrument_embeddings"]), dtype=np.float32)
            pitch_range = int(meta["pitch_min_midi"]), int(meta["pitch_max_midi"])
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelFileError(f"model file {path} has broken metadata: {exc}") from exc
        if self._embeddings.shape != (len(names), self.config.instrument_dims):
            raise ModelFileError(f"model file {path}: instrument embeddings {self._embeddings.shape} do not fit the names")
        self.path = path
        self.providers = tuple(self.session.get_providers())
        self._index = {name: i for i, name in enumerate(names)}
        self.spec = StreamSpec(
            sample_rate=self.config.sample_rate,
            hop_length_samples=self.config.hop_length_samples,
            preroll_steps=self.config.preroll_steps,
            time_steps=self.config.time_steps,
            embedding_dims=self.config.instrument_dims,
            pitch_min_midi=pitch_range[0],
            pitch_max_midi=pitch_range[1],
            instrument_names=names,
        )

    def instrument_embedding(self, name: str) -> np.ndarray:
        """Embedding of instrument ``name``, shape ``(embedding_dims,)`` float32.

        Raises
        ------
        KeyError
            Naming the instrument and listing the known ones.
        """
        try:
            return self._embeddings[self._index[name]].copy()
        except KeyError:
            raise KeyError(f"unknown instrument {name!r}; this model knows {sorted(self._index)}") from None

    def new_state(self, n_voices: int) -> State:
        cfg = self.config
        return {
            "lstm_h": np.zeros((n_voices, cfg.lstm_layers, cfg.lstm_hidden), np.float32),
            "lstm_c": np.zeros((n_voices, cfg.lstm_layers, cfg.lstm_hidden), np.float32),
            "context": np.zeros((n_voices, cfg.decoder_kernel_frames - 1, cfg.embedding_dims), np.float32),
            "overlap": np.zeros((n_voices, cfg.window_length_samples - cfg.hop_length_samples), np.float32),
        }

    def step(self, instrument_embedding, pitch_midi, velocity, time_index, state: Mapping[str, np.ndarray]):
        """One hop for every voice; see ``StreamingSynth.step`` for shapes."""
        feeds = {
            "instrument_embedding": np.ascontiguousarray(instrument_embedding, dtype=np.float32),
            "pitch_midi": np.ascontiguousarray(pitch_midi, dtype=np.int64),
            "velocity": np.ascontiguousarray(velocity, dtype=np.float32),
            "time_index": np.ascontiguousarray(time_index, dtype=np.int64),
        }
        for name in STATE_NAMES:
            feeds[name] = state[name]
        audio, *next_state = self.session.run(None, feeds)
        return audio, dict(zip(STATE_NAMES, next_state))

    def render_note(self, instrument_embedding: np.ndarray, *, pitch_midi: int, velocity: float, hops: int) -> np.ndarray:
        """One note of ``hops`` hops from a fresh state (pre-roll discarded), shape ``(hops * hop,)`` float32.

        ``hops`` must not exceed ``time_steps - preroll_steps``.
        """
        from nsynth_live.runtime.notes import render_notes  # noqa: PLC0415

        spec = self.spec
        if not 0 < hops <= spec.time_steps - spec.preroll_steps:
            raise ValueError(f"hops must be 1..{spec.time_steps - spec.preroll_steps}, got {hops}")
        emb = np.asarray(instrument_embedding, np.float32)[None]
        return render_notes(self, instrument_embeddings=emb, pitch_midi=pitch_midi, velocity=velocity,
                            n_note_steps=hops, max_voices_per_batch=1)[0]


def load_synth(path: str | os.PathLike, **kwargs) -> SingOnnxSynth:
    """Open a streaming SING ``.onnx`` file (see :class:`SingOnnxSynth`)."""
    return SingOnnxSynth(path, **kwargs)
