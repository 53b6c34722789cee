"""SING as a streaming ONNX graph played by ONNX Runtime (no torch: the live instrument imports this).

The export from PyTorch is :func:`nsynth_live.runtime.sing_export.export_sing_onnx`.

The graph is :class:`nsynth_live.models.sing.SingStreamingStep`: one 256-sample hop for a batch of
voices (axis 0 of every input and output). Inputs: ``instrument_embedding`` (voices, 16) float32,
``pitch_midi`` (voices,) int64, ``velocity`` (voices,) float32, ``time_index`` (voices,) int64, and the
state ``lstm_h``, ``lstm_c`` (voices, layers, hidden), ``context`` (voices, 8, embedding_dims),
``overlap`` (voices, 768). Outputs: ``audio`` (voices, 256) and ``next_<state>`` for each state input.
Model v3 (config ``architecture = "harmonic"``, :mod:`nsynth_live.models.sing_harmonic`) has the same
inputs and outputs with the state ``lstm_h``, ``lstm_c`` and ``context`` (voices, 1, n_controls), 512-
sample hops at 48 kHz and no pre-roll (:func:`state_names`).
The file's metadata holds the format version, the config, the instrument names and their
embeddings, so one ``.onnx`` file is a whole playable model, plus its ``name`` and
``weights_sha256`` (see :func:`weights_sha256`).

Integrity checks at load (issue 15 item 5: a file with NaN weights used to load and play NaN, one
with 1e30 weights or flipped bytes loud noise, with nothing logged): every initializer must be
finite and below :data:`WEIGHT_MAGNITUDE_LIMIT`; ``weights_sha256``, when the metadata has it
(exports since it was added), must match the weights; an optional whole-file sha256 (the app's
check of the committed default model, :data:`DEFAULT_MODEL_SHA256`); and a short test render must
stay finite and below :data:`TEST_NOTE_PEAK_LIMIT`. Each failure is a :class:`ModelIntegrityError` naming the file and
the reason. The file is parsed for these checks by the onnx package (imported when a model is loaded:
~0.7 s once per process).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from nsynth_live.models.sing_configs import SingConfig, SingHarmonicConfig, sing_config_from_dict
from nsynth_live.runtime.protocol import State, StreamSpec

SING_ONNX_FORMAT_VERSION = 1
ONNX_OPSET = 17
STATE_NAMES = ("lstm_h", "lstm_c", "context", "overlap")
# Model v3 (models.sing_harmonic, config architecture "harmonic"): no overlap-add tail; ``context`` is
# the previous frame's amplitudes (voices, 1, n_controls).
HARMONIC_STATE_NAMES = ("lstm_h", "lstm_c", "context")
# The replay graph (models.sing.SingReplay), in a file of its own next to the step graph:
REPLAY_SUFFIX = ".replay.onnx"  # sing_default.onnx -> sing_default.replay.onnx
REPLAY_INPUT_NAMES = ("instrument_embedding", "pitch_midi", "velocity", "time_index", "lstm_h", "lstm_c")
REPLAY_OUTPUT_NAMES = tuple(f"next_{name}" for name in STATE_NAMES)
REPLAY_MIN_FRAMES = 11  # the last 3 atoms need 11 embeddings (SingReplay); v3's replay needs 1
REPLAY_PARITY_TOLERANCE = 1e-4  # load check: replay vs stepping the step graph, largest state difference
INPUT_NAMES = ("instrument_embedding", "pitch_midi", "velocity", "time_index") + STATE_NAMES
OUTPUT_NAMES = ("audio",) + tuple(f"next_{name}" for name in STATE_NAMES)


def state_names(config) -> tuple[str, ...]:
    """The stream state's keys of a model config: SING's four, or v3's three (``HARMONIC_STATE_NAMES``)."""
    return HARMONIC_STATE_NAMES if isinstance(config, SingHarmonicConfig) else STATE_NAMES


def graph_names(config) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``(step inputs, step outputs, replay outputs)`` of a model config's graphs."""
    states = state_names(config)
    return (("instrument_embedding", "pitch_midi", "velocity", "time_index") + states,
            ("audio",) + tuple(f"next_{name}" for name in states), tuple(f"next_{name}" for name in states))


def replay_min_frames(config) -> int:
    """Fewest frames the replay graph can re-run exactly: 11 for SING's decoder, 1 for v3."""
    return 1 if isinstance(config, SingHarmonicConfig) else REPLAY_MIN_FRAMES


NAME_KEY = "name"  # metadata: the model's name (SingConfig.name unless export_sing_onnx is told otherwise)
WEIGHTS_SHA256_KEY = "weights_sha256"  # metadata: hex sha256 of the weights (see weights_sha256)
# sha256 of the whole of models/sing_default.onnx as committed (format 1, exported before
# weights_sha256 existed, so it cannot carry its own hash). The app checks it when it plays the
# default model; update it only together with a new committed default model.
DEFAULT_MODEL_SHA256 = "8646e936ba132236e8ab35e455ef6778c3835665d36e0393aec0718fe42a8d42"
# Test note of the load check: full scale is 1.0. A trained SING model stays well below it (the
# default model: peak 0.82 over its 20 instruments x MIDI 36/48/60/72/84 at velocity 127, whole
# notes), and the engine's limiter handles a small overshoot; 4.0 (+12 dB) leaves 14 dB of headroom
# above that for other trainings. Measured on damaged copies: 1e30 in a bias peaks at 1e28-1e30,
# 64 flipped bytes in the decoder's weights at 4.9, NaN weights give NaN.
TEST_NOTE_PEAK_LIMIT = 4.0  # full scale
TEST_NOTE_AUDIBLE_HOPS = 8  # hops after the pre-roll (128 ms at 16 kHz / 256)
TEST_NOTE_VELOCITY = 127.0  # the loudest notes, where an overflow shows first
# No trained weight comes near this (the default model's largest: 3.1, in its embedding tables); a
# value beyond it is a corrupt file (an injected 1e30, a flipped high exponent bit) even where the test
# note does not reach it (a pitch-table row outside MIDI 60, one synthesis-matrix entry).
WEIGHT_MAGNITUDE_LIMIT = 1e6
MAX_NAMES_IN_MESSAGE = 3  # tensor names listed in an error message


class ModelFileError(ValueError):
    """A model file is missing, corrupt, or not a streaming SING model this version can read."""


class ModelIntegrityError(ModelFileError):
    """A readable model file whose weights are damaged: non-finite, hash mismatch, or a test note
    that is NaN or far beyond full scale."""


def _parse(model, *, path) -> "onnx.ModelProto":
    """A parsed ModelProto from a file's bytes (or the model itself), via the onnx package.

    Raises
    ------
    ModelFileError
        If the bytes are not an ONNX model.
    """
    import onnx  # noqa: PLC0415 (~0.7 s to import: only when a model is loaded or exported)
    from google.protobuf.message import DecodeError  # noqa: PLC0415 (onnx's dependency)

    if isinstance(model, onnx.ModelProto):
        return model
    try:
        return onnx.load_model_from_string(bytes(model))
    except (DecodeError, ValueError, RuntimeWarning) as exc:
        raise ModelFileError(f"model file {path} is not a readable ONNX model: {exc}") from exc


def _float_values(tensor) -> np.ndarray | None:
    """The values of a floating-point initializer (any storage), else None."""
    from onnx import numpy_helper  # noqa: PLC0415

    values = numpy_helper.to_array(tensor)
    if values.dtype.kind in "fc" or values.dtype.name == "bfloat16":
        return np.asarray(values, dtype=np.complex128 if values.dtype.kind == "c" else np.float64).reshape(-1)
    return None


def weights_sha256(model) -> str:
    """Hex sha256 of a model's weights: every initializer's values (``numpy_helper.to_array(t).tobytes()``,
    little-endian, C order), in graph order.

    The file cannot hash itself (the hash is stored in its metadata), so the weights are hashed; names,
    shapes and the graph are checked by ONNX Runtime's parse and by the test note.

    Parameters
    ----------
    model : bytes or onnx.ModelProto
        A serialized model (a file's bytes), or a parsed one.

    Raises
    ------
    ModelFileError
        If the bytes are not an ONNX model.
    """
    from onnx import numpy_helper  # noqa: PLC0415

    digest = hashlib.sha256()
    for tensor in _parse(model, path="(bytes)").graph.initializer:
        digest.update(np.ascontiguousarray(numpy_helper.to_array(tensor)).tobytes())
    return digest.hexdigest()


def check_weights(model, *, path: str | os.PathLike) -> None:
    """Refuse a model whose weights hold NaN, inf or absurd values, or differ from its ``weights_sha256``.

    Parameters
    ----------
    model : bytes or onnx.ModelProto
        A serialized model (the file's bytes), or a parsed one.
    path : path
        Named in the messages.

    Raises
    ------
    ModelFileError
        The bytes are not an ONNX model, or the weights are stored outside the file (external data).
    ModelIntegrityError
        ``"3 of 22 weight tensors hold NaN or inf: a, b, c"``, ``"... hold values beyond 1e+06"``
        (:data:`WEIGHT_MAGNITUDE_LIMIT`), or ``"corrupt: weights sha256 <actual> expected <metadata>"``.
    """
    import onnx  # noqa: PLC0415

    proto = _parse(model, path=path)
    initializers = proto.graph.initializer
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    external = [t.name for t in initializers if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise ModelFileError(
            f"model file {path} keeps {len(external)} weight tensors in external files ({external[0]}...); "
            "nsynth-live reads single-file models: re-export it with export_sing_onnx")
    nonfinite, huge, largest = [], [], 0.0
    for initializer in initializers:
        try:
            values = _float_values(initializer)
        except (ValueError, TypeError) as exc:  # data that does not fit the tensor's shape or type
            raise ModelFileError(f"model file {path} is not a readable ONNX model: tensor {initializer.name}: "
                                 f"{exc}") from exc
        if values is None or values.size == 0:
            continue
        magnitude = np.abs(values)
        if not np.isfinite(magnitude).all():
            nonfinite.append(initializer.name)
        elif magnitude.max() > WEIGHT_MAGNITUDE_LIMIT:
            huge.append(initializer.name)
            largest = max(largest, float(magnitude.max()))
    fix = "Fix: re-export the model from its checkpoint, or restore an intact copy of the file"
    for bad, what in ((nonfinite, "hold NaN or inf"),
                      (huge, f"hold values beyond {WEIGHT_MAGNITUDE_LIMIT:.0e} (up to {largest:.3g})")):
        if bad:
            listed = ", ".join(bad[:MAX_NAMES_IN_MESSAGE]) + (", ..." if len(bad) > MAX_NAMES_IN_MESSAGE else "")
            raise ModelIntegrityError(f"model file {path} is corrupt: {len(bad)} of {len(initializers)} weight "
                                      f"tensors {what}: {listed}. {fix}")
    expected = metadata.get(WEIGHTS_SHA256_KEY)
    if expected is not None:
        actual = weights_sha256(proto)
        if actual != expected.strip().lower():
            raise ModelIntegrityError(
                f"model file {path} is corrupt: weights sha256 {actual} expected {expected} "
                f"(its metadata); the weights changed after export. {fix}")


def check_test_note(synth, *, path: str | os.PathLike, peak_limit: float | None = TEST_NOTE_PEAK_LIMIT) -> float:
    """Render a short note and refuse a model whose output is non-finite or far beyond full scale.

    Two voices (the first and the last instrument) at the middle of the pitch range, velocity 127,
    from a fresh state: the pre-roll and :data:`TEST_NOTE_AUDIBLE_HOPS` hops (21 steps for SING,
    ~8 ms on the default model). The audio of every step, pre-roll included, and the state after
    the last must be finite, and the audio's peak at most ``peak_limit``.

    Parameters
    ----------
    synth : StreamingSynth
    path : path
        Named in the messages.
    peak_limit : float or None
        Full scale is 1.0; see :data:`TEST_NOTE_PEAK_LIMIT` for the default's reason. None: only
        finiteness is checked.

    Returns
    -------
    float
        The test note's peak (full scale 1.0).

    Raises
    ------
    ModelIntegrityError
        ``"a test note is NaN or inf"`` or ``"a test note peaks at 1e+28 full scale"``.
    """
    spec = synth.spec
    names = spec.instrument_names
    voices = 2 if len(names) > 1 else 1
    voice_names = (names[0], names[-1])[:voices]
    embeddings = np.stack([synth.instrument_embedding(name) for name in voice_names])
    pitch_midi = (spec.pitch_min_midi + spec.pitch_max_midi) // 2
    pitches = np.full(voices, pitch_midi, dtype=np.int64)
    velocities = np.full(voices, TEST_NOTE_VELOCITY, dtype=np.float32)
    steps = min(spec.preroll_steps + TEST_NOTE_AUDIBLE_HOPS, spec.time_steps)
    what = (f"a test note ({voices} voices: {', '.join(voice_names)}, MIDI {pitch_midi}, "
            f"velocity {TEST_NOTE_VELOCITY:.0f}, {steps} steps from a fresh state)")
    fix = "Fix: re-export the model from its checkpoint, or restore an intact copy of the file"
    state = synth.new_state(voices)
    peak = 0.0
    with np.errstate(all="ignore"):
        for step in range(steps):
            audio, state = synth.step(embeddings.astype(np.float32), pitches, velocities,
                                      np.full(voices, step, dtype=np.int64), state)
            audio = np.asarray(audio)
            if not np.isfinite(audio).all():
                raise ModelIntegrityError(f"model file {path} is corrupt: {what} is NaN or inf at step {step}. {fix}")
            peak = max(peak, float(np.max(np.abs(audio))))
        if not all(np.isfinite(value).all() for value in state.values()):
            raise ModelIntegrityError(f"model file {path} is corrupt: the state after {what} holds NaN or inf. {fix}")
    if peak_limit is not None and peak > peak_limit:
        raise ModelIntegrityError(
            f"model file {path} is corrupt: {what} peaks at {peak:.3g} full scale (a trained model stays below "
            f"{peak_limit:g}). {fix}")
    return peak


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
    expected_file_sha256 : str, optional
        Hex sha256 the whole file must have (the app passes :data:`DEFAULT_MODEL_SHA256` for the
        committed default model). Not checked when the file carries its own ``weights_sha256``:
        that is a later export (``export/train_sing.py`` writes the default path), checked by it.
    test_note_peak_limit : float or None
        Largest peak (full scale 1.0) the load check's test note may reach; None checks only that
        it is finite (for deliberately scaled test models). See :data:`TEST_NOTE_PEAK_LIMIT`.

    Attributes
    ----------
    name : str or None
        The metadata's ``name`` (None in files exported before it existed).
    weights_sha256 : str or None
        The metadata's verified ``weights_sha256`` (None in files exported before it existed).
    test_note_peak : float
        Peak of the load check's test note (full scale 1.0).

    Raises
    ------
    ModelFileError
        If the file is missing, not an ONNX model, of an unknown format version or lacks metadata.
    ModelIntegrityError
        (a ModelFileError) If its weights hold NaN, inf or values beyond
        :data:`WEIGHT_MAGNITUDE_LIMIT`, its sha256 (``weights_sha256`` in the
        metadata, or ``expected_file_sha256``) does not match, or a test note is NaN, inf or peaks
        above ``test_note_peak_limit``; see :func:`check_weights` and :func:`check_test_note`.
    """

    def __init__(self, path: str | os.PathLike, *, intra_op_threads: int = 1, providers: Sequence[str] | None = None,
                 expected_file_sha256: str | None = None,
                 test_note_peak_limit: float | None = TEST_NOTE_PEAK_LIMIT):
        ort = _import_onnxruntime()
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"model file {path} does not exist; train one with 'python export/train_v3.py' (model v3) or 'python export/train_sing.py' (SING v2), or pass --model")
        data = path.read_bytes()
        proto = _parse(data, path=path)
        meta = {entry.key: entry.value for entry in proto.metadata_props}
        nodes = len(proto.graph.node)
        if nodes == 0:
            raise ModelFileError(f"model file {path} is not a readable ONNX model: it has no graph")
        if meta.get("model") != "sing-streaming":
            raise ModelFileError(f"model file {path} is not a streaming SING model (metadata model={meta.get('model')!r})")
        if meta.get("format_version") != str(SING_ONNX_FORMAT_VERSION):
            raise ModelFileError(
                f"model file {path} has format_version {meta.get('format_version')!r}; this nsynth-live reads "
                f"{SING_ONNX_FORMAT_VERSION}: re-export it with this version"
            )
        check_weights(proto, path=path)
        del proto
        if expected_file_sha256 is not None and WEIGHTS_SHA256_KEY not in meta:
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected_file_sha256.strip().lower():
                raise ModelIntegrityError(f"model file {path} was modified or is corrupt: sha256 {actual} expected "
                                          f"{expected_file_sha256} (the whole file)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(data, sess_options=options, providers=list(providers))
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
            raise ModelFileError(f"model file {path} is not a readable ONNX model: {exc}") from exc
        del data
        try:
            self.config = sing_config_from_dict(json.loads(meta["config"]))
            names = tuple(json.loads(meta["instrument_names"]))
            self._embeddings = np.asarray(json.loads(meta["instrument_embeddings"]), dtype=np.float32)
            pitch_range = int(meta["pitch_min_midi"]), int(meta["pitch_max_midi"])
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelFileError(f"model file {path} has broken metadata: {exc}") from exc
        if self._embeddings.shape != (len(names), self.config.instrument_dims):
            raise ModelFileError(f"model file {path}: instrument embeddings {self._embeddings.shape} do not fit the names")
        if not np.isfinite(self._embeddings).all():
            raise ModelIntegrityError(f"model file {path} is corrupt: its instrument embeddings hold NaN or inf")
        self.name = meta.get(NAME_KEY)
        self.weights_sha256 = meta.get(WEIGHTS_SHA256_KEY)
        self.path = path
        self.providers = tuple(self.session.get_providers())
        self._index = {name: i for i, name in enumerate(names)}
        self.state_names = state_names(self.config)
        self.spec = StreamSpec(
            sample_rate=self.config.sample_rate,
            hop_length_samples=self.config.hop_length_samples,
            preroll_steps=self.config.preroll_steps,
            time_steps=self.config.time_steps,
            embedding_dims=self.config.instrument_dims,
            pitch_min_midi=pitch_range[0],
            pitch_max_midi=pitch_range[1],
            instrument_names=names,
            decoder_half_kernel_frames=self.config.lookahead_frames,
        )
        try:
            self.test_note_peak = check_test_note(self, path=path, peak_limit=test_note_peak_limit)
        except ModelIntegrityError:
            raise
        except Exception as exc:  # onnxruntime's own errors: a graph that loads but cannot run
            raise ModelFileError(f"model file {path} cannot run a test note: {type(exc).__name__}: {exc}") from exc
        self.replay_session = None
        self.replay_state_keys = self.state_names
        self.replay_min_frames = replay_min_frames(self.config)
        self.replay_path = replay_path(path)
        if self.replay_path.is_file():
            self._open_replay(ort, options, list(providers))

    def _open_replay(self, ort, options, providers) -> None:
        """Open the replay graph and check it against the step graph (weights, then a test replay
        that must equal stepping the same frames within :data:`REPLAY_PARITY_TOLERANCE`)."""
        path = self.replay_path
        data = path.read_bytes()
        proto = _parse(data, path=path)
        meta = {entry.key: entry.value for entry in proto.metadata_props}
        if meta.get("model") != "sing-replay":
            raise ModelFileError(f"replay file {path} is not a SING replay graph (metadata model={meta.get('model')!r}); "
                                 f"delete it or re-export the model")
        check_weights(proto, path=path)
        if self.weights_sha256 is not None and meta.get(WEIGHTS_SHA256_KEY + "_of_step") not in (None, self.weights_sha256):
            raise ModelFileError(f"replay file {path} belongs to another model than {self.path} "
                                 f"(re-export both with export/train_sing.py, or delete {path.name})")
        del proto
        try:
            session = ort.InferenceSession(data, sess_options=options, providers=providers)
        except Exception as exc:
            raise ModelFileError(f"replay file {path} is not a readable ONNX model: {exc}") from exc
        self.replay_session = session
        self.replay_state_keys = ("lstm_h", "lstm_c")
        try:
            error = self._replay_parity_error()
        except Exception as exc:
            self.replay_session, self.replay_state_keys = None, self.state_names
            raise ModelFileError(f"replay file {path} cannot run a test replay: {type(exc).__name__}: {exc}") from exc
        if not error <= REPLAY_PARITY_TOLERANCE:
            self.replay_session, self.replay_state_keys = None, self.state_names
            raise ModelIntegrityError(f"replay file {path} does not match {self.path.name}: a test replay differs from "
                                      f"stepping by {error:.3g} (> {REPLAY_PARITY_TOLERANCE:g}); it is corrupt or "
                                      f"from another model: re-export it or delete it")

    def _replay_parity_error(self) -> float:
        """Largest state difference between the replay graph and the step graph over one test window."""
        spec = self.spec
        emb = self._embeddings[:1].copy()
        pitch, velocity = np.array([60], np.int64), np.array([100.0], np.float32)
        state = self.new_state(1)
        start, frames = spec.preroll_steps + 4, REPLAY_MIN_FRAMES + 1  # 12 frames: enough for either graph
        for t in range(start):
            _, state = self.step(emb, pitch, velocity, np.array([t], np.int64), state)
        time_index = np.arange(start, start + frames, dtype=np.int64)[None]
        stepped = dict(state)
        for t in time_index[0]:
            _, stepped = self.step(emb, pitch, velocity, np.array([t], np.int64), stepped)
        replayed = self.replay(emb, pitch, velocity, time_index, state)
        return max(float(np.max(np.abs(replayed[k] - stepped[k]))) for k in self.state_names)

    def replay(self, instrument_embedding, pitch_midi, velocity, time_index, start_state) -> State:
        """The state after frames ``time_index`` (voices, K) run from ``start_state`` with
        ``instrument_embedding`` (the engine's crossfaded morph; ``runtime.protocol.replay_by_stepping``
        gives the meaning). Uses the replay graph when the model has one and ``K >= 11``, else steps."""
        time_index = np.ascontiguousarray(time_index, dtype=np.int64)
        if self.replay_session is None or time_index.shape[1] < REPLAY_MIN_FRAMES:
            from nsynth_live.runtime.protocol import replay_by_stepping  # noqa: PLC0415

            return replay_by_stepping(self, instrument_embedding, pitch_midi, velocity, time_index, start_state)
        feeds = {
            "instrument_embedding": np.ascontiguousarray(instrument_embedding, dtype=np.float32),
            "pitch_midi": np.ascontiguousarray(pitch_midi, dtype=np.int64),
            "velocity": np.ascontiguousarray(velocity, dtype=np.float32),
            "time_index": time_index,
            "lstm_h": np.ascontiguousarray(start_state["lstm_h"], dtype=np.float32),
            "lstm_c": np.ascontiguousarray(start_state["lstm_c"], dtype=np.float32),
        }
        return dict(zip(self.state_names, self.replay_session.run(None, feeds)))

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
        if isinstance(cfg, SingHarmonicConfig):
            return {
                "lstm_h": np.zeros((n_voices, cfg.lstm_layers, cfg.lstm_hidden), np.float32),
                "lstm_c": np.zeros((n_voices, cfg.lstm_layers, cfg.lstm_hidden), np.float32),
                "context": np.zeros((n_voices, 1, cfg.n_controls), np.float32),
            }
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
        for name in self.state_names:
            feeds[name] = state[name]
        audio, *next_state = self.session.run(None, feeds)
        return audio, dict(zip(self.state_names, next_state))

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


def replay_path(path: str | os.PathLike) -> Path:
    """Where the replay graph of the step graph ``path`` lives (``x.onnx`` -> ``x.replay.onnx``)."""
    path = Path(path)
    return path.with_name(path.name[: -len(".onnx")] + REPLAY_SUFFIX if path.name.endswith(".onnx")
                          else path.name + REPLAY_SUFFIX)


def load_synth(path: str | os.PathLike, **kwargs) -> SingOnnxSynth:
    """Open a streaming SING ``.onnx`` file (see :class:`SingOnnxSynth`)."""
    return SingOnnxSynth(path, **kwargs)
