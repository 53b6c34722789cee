"""Training of the NSynth WaveNet autoencoder on any NSynth-format folder, and its evaluation.

Recipe (Magenta ``wavenet/train.py`` and ``wavenet/h512_bo16.py``, NSynth paper section 3.1):
random 6144-sample crops of whole notes, mean softmax cross-entropy over the 256 mu-law classes,
Adam (epsilon 1e-8) with Magenta's piecewise-constant learning-rate schedule (2e-4 until step
90k, then 1.33e-4, 6e-5, 4e-5, 2e-5, 6e-6, 2e-6 at 120k, 150k, 180k, 210k, 240k). Magenta trained at
batch 32 over 32 GPUs for 200k steps. ``learning_rate_scale`` multiplies the schedule (1.0 =
Magenta's). Like Magenta's ``train.py`` (``ExponentialMovingAverage(decay=0.9999,
num_updates=global_step)``) we keep an exponential moving average of the weights, with TensorFlow's
warm-up: the decay at step ``n`` is ``min(ema_decay, (1 + n) / (10 + n))``. Magenta's generator
restored the raw weights; ours generate from the average by default (``model.pt``), which smooths
the step-to-step noise of a short, small-batch CPU run; the raw ones stay in ``train_state.pt``.

The run folder holds ``train_state.pt`` (raw and averaged model + optimizer + step + RNG, written
atomically every ``checkpoint_every_steps`` and on interrupt: a killed run resumes where it
stopped), ``model.pt`` (inference checkpoint, averaged weights) and ``log.jsonl`` (one JSON line
per logged step).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from nsynth_live.models.configs import config_from_dict
from nsynth_live.functional.pitch import estimate_f0_hz_or_nan
from nsynth_live.data.nsynth import NSynthDataset
from nsynth_live.fileio import remove_stale_temporaries
from nsynth_live.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nsynth_live.models.wavenet_ae import WAVENET_MODEL_NAME, WaveNetAutoencoder, load_state_dict_checked
from nsynth_live.models.wavenet_configs import WAVENET_CONFIGS, get_wavenet_config
from nsynth_live.train.wavenet_defaults import (  # noqa: F401 - re-exported (torch-free for the command's --help)
    LOG_FILE, MAGENTA_CROP_SAMPLES, MAGENTA_EMA_DECAY, MODEL_FILE, TRAIN_STATE_FILE, TRAINED_WEIGHTS,
)

MAGENTA_ADAM_EPSILON = 1e-8  # wavenet/train.py AdamOptimizer(lr, epsilon=1e-8)
# (first step, learning rate) pairs, h512_bo16 Config.learning_rate_schedule
MAGENTA_LEARNING_RATE_SCHEDULE = (
    (0, 2e-4), (90_000, 4e-4 / 3), (120_000, 6e-5), (150_000, 4e-5),
    (180_000, 2e-5), (210_000, 6e-6), (240_000, 2e-6),
)
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}  # name -> autocast dtype


@dataclass(frozen=True)
class WaveNetTrainConfig:
    """Training settings.

    Attributes
    ----------
    model : str
        Name in ``WAVENET_CONFIGS`` (``small`` trains on a CPU; ``magenta`` is h512_bo16).
    batch_size : int
        Crops per step (Magenta: 32).
    crop_samples : int
        Samples per crop, a multiple of the model's hop (Magenta: 6144).
    learning_rate_schedule : tuple of (int, float)
        ``(first_step, learning_rate)``, first step 0, increasing.
    learning_rate_scale : float
        Multiplies every learning rate of the schedule.
    adam_epsilon : float
    max_steps : int
        Stop after this many steps in total (resumed runs count earlier steps).
    checkpoint_every_steps, log_every_steps : int
    holdout_fraction : float
        Fraction of notes kept out of training (for evaluation), chosen with ``seed``.
    seed : int
    instruments : tuple of str
        ``instrument_str`` values to train on; empty = every note of the dataset.
    precision : str
        ``"float32"``, or ``"bfloat16"``: forward and backward under ``torch.autocast`` (weights,
        optimizer and loss stay float32; 1.7x faster per step, measured on an AVX512-BF16 CPU).
    ema_decay : float
        In ``[0, 1)``: decay of the moving average of the weights (:func:`ema_decay_at`); 0 makes
        the average equal to the raw weights.
    """

    model: str = "small"
    batch_size: int = 8
    crop_samples: int = MAGENTA_CROP_SAMPLES
    learning_rate_schedule: tuple = MAGENTA_LEARNING_RATE_SCHEDULE
    learning_rate_scale: float = 1.0
    adam_epsilon: float = MAGENTA_ADAM_EPSILON
    max_steps: int = 200_000
    checkpoint_every_steps: int = 100
    log_every_steps: int = 10
    holdout_fraction: float = 0.02
    seed: int = 0
    instruments: tuple = ()
    precision: str = "float32"
    ema_decay: float = MAGENTA_EMA_DECAY

    def __post_init__(self):
        if self.model not in WAVENET_CONFIGS:
            raise ValueError(f"model must be one of {sorted(WAVENET_CONFIGS)}, got {self.model!r}")
        hop = WAVENET_CONFIGS[self.model].hop_length_samples
        if self.crop_samples < hop or self.crop_samples % hop:
            raise ValueError(f"crop_samples must be a positive multiple of the hop ({hop}), got {self.crop_samples}")
        for name in ("batch_size", "max_steps", "checkpoint_every_steps", "log_every_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        schedule = tuple((int(s), float(lr)) for s, lr in self.learning_rate_schedule)
        object.__setattr__(self, "learning_rate_schedule", schedule)
        steps = [s for s, _ in schedule]
        if not schedule or steps[0] != 0 or steps != sorted(set(steps)) or any(lr <= 0 for _, lr in schedule):
            raise ValueError(
                "learning_rate_schedule must be (step, lr > 0) pairs with increasing steps starting at 0, "
                f"got {self.learning_rate_schedule}"
            )
        if not self.learning_rate_scale > 0 or not self.adam_epsilon > 0:
            raise ValueError(
                f"learning_rate_scale and adam_epsilon must be > 0, got {self.learning_rate_scale}, {self.adam_epsilon}"
            )
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {self.holdout_fraction}")
        object.__setattr__(self, "instruments", tuple(sorted({str(i) for i in self.instruments})))
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def learning_rate(self, step: int) -> float:
        """Learning rate of a step: the last schedule entry whose first step is ``<= step``, scaled."""
        rate = self.learning_rate_schedule[0][1]
        for first_step, value in self.learning_rate_schedule:
            if step >= first_step:
                rate = value
        return rate * self.learning_rate_scale

    def to_dict(self) -> dict:
        out = asdict(self)
        out["learning_rate_schedule"] = [list(pair) for pair in self.learning_rate_schedule]
        out["instruments"] = list(self.instruments)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "WaveNetTrainConfig":
        return config_from_dict(cls, values)


def holdout_split(note_strs, *, holdout_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Random split of note names into (train, held out); at least one note is held out if asked for."""
    names = sorted(note_strs)
    order = np.random.default_rng(seed).permutation(len(names))
    n_holdout = 0 if holdout_fraction == 0 else max(1, round(holdout_fraction * len(names)))
    if n_holdout >= len(names):
        raise ValueError(f"holdout_fraction {holdout_fraction} leaves no training notes out of {len(names)}")
    held = sorted(names[i] for i in order[:n_holdout])
    train = sorted(names[i] for i in order[n_holdout:])
    return train, held


# Settings that may change when a run resumes: how long it runs, its learning rate (every logged
# step records the rate it used, in log.jsonl) and how often it checkpoints and logs. Everything
# else (model, data, crops, batch, seed, precision) must match the saved run.
RESUMABLE_CHANGES = ("max_steps", "learning_rate_schedule", "learning_rate_scale",
                     "checkpoint_every_steps", "log_every_steps", "ema_decay")


def _identity(config: "WaveNetTrainConfig") -> dict:
    values = config.to_dict()
    for name in RESUMABLE_CHANGES:
        values.pop(name)
    return values


def _identity_differences(saved: "WaveNetTrainConfig", now: "WaveNetTrainConfig") -> list[str]:
    """``"name: saved X, now Y"`` for each setting outside ``RESUMABLE_CHANGES`` that differs."""
    a, b = _identity(saved), _identity(now)
    return [f"{name}: saved {a[name]!r}, now {b.get(name)!r}" for name in a if a[name] != b.get(name)]


def ema_decay_at(ema_decay: float, step: int) -> float:
    """Decay of the weight average after ``step`` updates: ``min(ema_decay, (1 + step) / (10 + step))``.

    Source: TensorFlow ``tf.train.ExponentialMovingAverage(decay, num_updates)``, as Magenta's
    ``wavenet/train.py`` uses it (the warm-up lets the average follow the early, fast-moving weights).
    """
    return min(float(ema_decay), (1.0 + step) / (10.0 + step))


def update_ema_(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``average <- decay * average + (1 - decay) * model``, parameter by parameter, in place.

    Both modules must have the same parameters (float tensors of the same shapes); buffers are copied.
    """
    with torch.no_grad():
        for mean, value in zip(average.parameters(), model.parameters()):
            mean.lerp_(value.detach(), 1.0 - decay)
        for mean, value in zip(average.buffers(), model.buffers()):
            mean.copy_(value)


@contextlib.contextmanager
def sigterm_raises_keyboard_interrupt():
    """Within the block, SIGTERM (a plain ``kill``, a job scheduler stopping the job) raises
    ``KeyboardInterrupt`` in the main thread, so ``finally`` blocks run (the trainer checkpoints).
    Outside the main thread it does nothing (Python delivers signals to the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"stopped by signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def select_notes(dataset: NSynthDataset, instruments=()) -> list[str]:
    """Note names of ``dataset`` whose ``instrument_str`` is in ``instruments`` (all notes if empty).

    Raises
    ------
    ValueError
        If an asked-for instrument is not in the dataset (the message lists the ones that are).
    """
    if not instruments:
        return [n.note_str for n in dataset]
    missing = sorted(set(instruments) - set(dataset.instruments()))
    if missing:
        raise ValueError(f"instruments {missing} are not in {dataset.root}; it has {dataset.instruments()}")
    wanted = set(instruments)
    return [n.note_str for n in dataset if n.instrument_str in wanted]


class CropSampler:
    """Random fixed-length crops of whole notes (Magenta ``get_wavenet_batch``), audio cached in memory.

    Parameters
    ----------
    dataset : NSynthDataset
    note_strs : list of str
        Notes to draw from.
    crop_samples : int
    generator : torch.Generator
        Source of randomness (its state is checkpointed).
    """

    def __init__(self, dataset: NSynthDataset, note_strs, *, crop_samples: int, generator: torch.Generator):
        if not note_strs:
            raise ValueError("no training notes: the dataset is empty or everything is held out")
        self.dataset = dataset
        self.note_strs = list(note_strs)
        self.crop_samples = crop_samples
        self.generator = generator
        self._cache: dict[str, np.ndarray] = {}

    def _audio(self, note_str: str) -> np.ndarray:
        audio = self._cache.get(note_str)
        if audio is None:
            audio = self.dataset.load_audio(note_str)
            if audio.shape[0] < self.crop_samples:
                audio = np.pad(audio, (0, self.crop_samples - audio.shape[0]))
            self._cache[note_str] = audio
        return audio

    def sample(self, batch_size: int) -> torch.Tensor:
        """Crops, shape ``(batch_size, crop_samples)`` float32 in [-1, 1]."""
        picks = torch.randint(len(self.note_strs), (batch_size,), generator=self.generator).tolist()
        crops = []
        for index in picks:
            audio = self._audio(self.note_strs[index])
            start = int(torch.randint(audio.shape[0] - self.crop_samples + 1, (1,), generator=self.generator))
            crops.append(audio[start: start + self.crop_samples])
        return torch.from_numpy(np.stack(crops))


@dataclass
class TrainResult:
    """What :func:`train_wavenet` did."""

    step: int
    losses: list = field(default_factory=list)  # (step, loss in nats per sample)
    stopped_by: str = "max_steps"
    seconds: float = 0.0


def train_wavenet(dataset_root, run_dir, *, config: WaveNetTrainConfig, device="cpu",
                  max_wall_seconds: float | None = None, progress: bool = True) -> TrainResult:
    """Train (or resume training) a WaveNet autoencoder.

    Parameters
    ----------
    dataset_root : path
        NSynth json/wav folder (``examples.json`` + ``audio/``).
    run_dir : path
        Run folder; if it holds ``train_state.pt`` training resumes from it. The step count and
        the learning rate may change on resume (``RESUMABLE_CHANGES``); a ``config`` that differs
        in anything else raises.
    config : WaveNetTrainConfig
    device : str or torch.device
    max_wall_seconds : float, optional
        Stop (after checkpointing) once this much wall time has passed in this call. Ctrl-C and
        SIGTERM also checkpoint before ``KeyboardInterrupt`` propagates.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        If the run folder belongs to a different training config.
    FloatingPointError
        If a step's loss or gradient norm is not finite; raised before that step updates the
        weights, so the checkpoint written on the way out keeps the last finite ones.
    """
    from tqdm.auto import tqdm

    from nsynth_live.runtime.wavenet_generate import resolve_device

    device = resolve_device(device)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(run_dir, names=(TRAIN_STATE_FILE, MODEL_FILE))  # a killed run's checkpoint writes
    dataset = NSynthDataset(dataset_root)
    state_path = run_dir / TRAIN_STATE_FILE
    torch_generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model = WaveNetAutoencoder(get_wavenet_config(config.model))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate(0), eps=config.adam_epsilon)
    step = 0
    saved_average = None  # runs saved before the average existed start it from their weights
    if state_path.exists():
        payload = load_checkpoint(state_path, model=WAVENET_MODEL_NAME)
        extra = payload["extra"]
        saved = WaveNetTrainConfig.from_dict(extra["train_config"])
        differences = _identity_differences(saved, config)
        if differences:
            raise ValueError(
                f"{state_path} was written with another training config ({'; '.join(differences)}); "
                "use a new --run-dir or the same settings"
            )
        load_state_dict_checked(model, payload["state_dict"])
        optimizer.load_state_dict(extra["optimizer"])
        torch_generator.set_state(extra["crop_rng"])
        step = int(extra["step"])
        saved_average = extra.get("ema_state_dict")
    average = copy.deepcopy(model)
    if saved_average is not None:
        load_state_dict_checked(average, saved_average)
    train_notes, held_out = holdout_split(select_notes(dataset, config.instruments),
                                          holdout_fraction=config.holdout_fraction, seed=config.seed)
    sampler = CropSampler(dataset, train_notes, crop_samples=config.crop_samples, generator=torch_generator)
    model.to(device).train()
    average.to(device).eval().requires_grad_(False)
    for group_state in optimizer.state.values():
        for key, value in group_state.items():
            if isinstance(value, torch.Tensor) and key != "step":
                group_state[key] = value.to(device)

    def checkpoint():
        extra = {"train_config": config.to_dict(), "optimizer": optimizer.state_dict(), "step": step,
                 "crop_rng": torch_generator.get_state(), "held_out_notes": held_out,
                 "dataset": str(dataset_root), "ema_state_dict": average.state_dict()}
        save_checkpoint(state_path, model=WAVENET_MODEL_NAME, config=model.config.to_dict(),
                        state_dict=model.state_dict(), sample_rate=model.config.sample_rate,
                        hop_length_samples=model.config.hop_length_samples, extra=extra)
        average.save(run_dir / MODEL_FILE, extra={"step": step, "held_out_notes": held_out, "weights": "ema",
                                                  "ema_decay": config.ema_decay})

    autocast_dtype = PRECISIONS[config.precision]
    result = TrainResult(step=step)
    start_time = time.monotonic()
    bar = tqdm(total=config.max_steps, initial=step, desc="wavenet train", unit="step", disable=not progress)
    running = None
    try:
        with sigterm_raises_keyboard_interrupt(), open(run_dir / LOG_FILE, "a") as log:
            while step < config.max_steps:
                if max_wall_seconds is not None and time.monotonic() - start_time > max_wall_seconds:
                    result.stopped_by = "max_wall_seconds"
                    break
                learning_rate = config.learning_rate(step)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate
                crops = sampler.sample(config.batch_size).to(device)
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    loss = model.loss(crops)
                value = float(loss.detach())
                optimizer.zero_grad(set_to_none=True)
                non_finite = None if math.isfinite(value) else f"loss {value}"
                if non_finite is None:
                    loss.backward()
                    grad_norm = float(torch.nn.utils.get_total_norm(
                        [p.grad for p in model.parameters() if p.grad is not None]))
                    non_finite = None if math.isfinite(grad_norm) else f"gradient norm {grad_norm}"
                if non_finite is not None:
                    # raised before the update: the checkpoint written on the way out holds the
                    # weights before this step, not non-finite ones, and a resume goes on from them
                    raise FloatingPointError(
                        f"{non_finite} at step {step + 1}; the run is checkpointed at step {step} with the "
                        "weights before it: resume with a lower learning_rate_scale (--lr-scale)"
                    )
                optimizer.step()
                step += 1
                update_ema_(average, model, ema_decay_at(config.ema_decay, step))
                running = value if running is None else 0.95 * running + 0.05 * value
                bar.update(1)
                bar.set_postfix(loss=f"{running:.3f}", lr=f"{learning_rate:.2g}")
                if step % config.log_every_steps == 0:
                    result.losses.append((step, value))
                    log.write(json.dumps({"step": step, "loss_nats": value, "loss_smoothed": running,
                                          "learning_rate": learning_rate,
                                          "seconds": round(time.monotonic() - start_time, 1)}) + "\n")
                    log.flush()
                if step % config.checkpoint_every_steps == 0:
                    checkpoint()
    finally:
        bar.close()
        checkpoint()  # also on Ctrl-C, SIGTERM and errors: nothing finished is lost
    result.step = step
    result.seconds = time.monotonic() - start_time
    return result


# ---------------------------------------------------------------------------- evaluation
def log_spectral_distance_db(estimate: np.ndarray, reference: np.ndarray, *, n_fft: int = 1024,
                             hop_length_samples: int = 256, floor_db: float = -80.0) -> float:
    """Mean absolute difference of magnitude spectrograms in dB (Hann window, no centring).

    Both spectrograms are in dB relative to the reference's loudest bin and floored at ``floor_db``;
    the mean runs over the bins where either is above the floor (silence vs silence costs nothing),
    and the measure does not depend on the overall scale of the reference.

    Parameters
    ----------
    estimate, reference : numpy.ndarray, shape (time,), float, same length >= n_fft

    Returns
    -------
    float
        dB.
    """
    window = torch.hann_window(n_fft, dtype=torch.float64)

    def magnitude(audio):
        return torch.stft(torch.as_tensor(audio, dtype=torch.float64), n_fft, hop_length_samples, window=window,
                          center=False, return_complex=True).abs()

    est, ref = magnitude(estimate), magnitude(reference)
    peak = ref.max().clamp_min(1e-12)
    est_db = (20 * torch.log10(est / peak + 1e-12)).clamp_min(floor_db)
    ref_db = (20 * torch.log10(ref / peak + 1e-12)).clamp_min(floor_db)
    active = (est_db > floor_db) | (ref_db > floor_db)
    if not bool(active.any()):
        return 0.0
    return float((est_db - ref_db).abs()[active].mean())


def harmonic_energy_ratio(audio: np.ndarray, f0_hz: float, *, sample_rate: int, search_cents: float = 50.0,
                          half_width_fraction: float = 0.03) -> float:
    """Fraction of a signal's energy that lies at the harmonics of ``f0_hz`` (searched within a few cents).

    One Hann-windowed FFT over the whole signal. For each candidate fundamental ``f`` within
    ``search_cents`` of ``f0_hz`` (5-cent steps), the bins within ``half_width_fraction * f`` (and
    at least 2 bins, the window's main lobe) of a harmonic ``k * f`` below Nyquist count as harmonic;
    the result is the largest harmonic share over the candidates. A steady note at ``f0_hz`` (or a
    few cents off) scores near 1; white noise scores about ``2 * half_width_fraction`` for a high
    ``f0_hz`` (more where 2 bins are wider than the windows). Unlike an f0 estimate it grades a
    partly noisy reconstruction, and it does not care which harmonic is the loudest: energy only at
    even harmonics (the octave above) also counts.

    Parameters
    ----------
    audio : numpy.ndarray, shape (time,), float, time >= 64
    f0_hz : float
        Fundamental, Hz, ``0 < f0_hz < sample_rate / 2``.
    sample_rate : int
        Hz.
    search_cents : float
        The candidates span ``f0_hz`` +- this.
    half_width_fraction : float
        Half width of each harmonic window, as a fraction of the fundamental.

    Returns
    -------
    float
        In [0, 1]; 0 for silence.

    Raises
    ------
    ValueError
        For a non-1-D or too short signal, or an f0 out of range.
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1 or x.shape[0] < 64:
        raise ValueError(f"audio must be 1-D with >= 64 samples, got shape {x.shape}")
    if not 0 < f0_hz < sample_rate / 2:
        raise ValueError(f"f0_hz must be in (0, {sample_rate / 2}), got {f0_hz}")
    power = np.abs(np.fft.rfft(x * np.hanning(x.shape[0]))) ** 2
    total = power.sum()
    if total <= 0:
        return 0.0
    freqs = np.fft.rfftfreq(x.shape[0], 1.0 / sample_rate)
    best = 0.0
    for cents in np.arange(-search_cents, search_cents + 1e-9, 5.0):
        f0 = f0_hz * 2.0 ** (cents / 1200.0)
        distance = np.abs(freqs - np.maximum(np.round(freqs / f0), 1.0) * f0)
        near = distance <= max(half_width_fraction * f0, 2.0 * sample_rate / x.shape[0])
        best = max(best, float(power[near].sum() / total))
    return best


def evaluate_reconstructions(model: WaveNetAutoencoder, dataset: NSynthDataset, note_strs, *, device="cpu",
                             dtype=torch.float32, seed: int = 0, temperature: float = 1.0,
                             duration_seconds: float | None = None, progress: bool = True) -> list[dict]:
    """Encode and re-generate notes; measure pitch error and spectral distance.

    Parameters
    ----------
    model : WaveNetAutoencoder
    dataset : NSynthDataset
    note_strs : list of str
        Notes to reconstruct (generated as one batch).
    temperature : float
        Sampling temperature (1: the model's distribution, as Magenta; 0: greedy).
    duration_seconds : float, optional
        Reconstruct only the first part of each note (whole frames), to save time.

    Returns
    -------
    list of dict
        Per note: ``note_str``, ``pitch_midi``, ``f0_original_hz``, ``f0_reconstruction_hz``,
        ``pitch_error_cents`` (reconstruction vs the original's f0: what a reconstruction must
        match, also where the instrument sounds off its MIDI pitch, as organ stops an octave down
        do), ``pitch_error_vs_midi_cents`` (reconstruction vs the MIDI pitch),
        ``original_pitch_error_cents`` (the original vs the MIDI pitch, for reference); NaN where
        a signal has no stable pitch, ``spectral_distance`` (SING's log-power
        spectral loss, reconstruction vs original), ``spectral_distance_silence`` (the same for
        silence vs the original: a reference scale), ``log_spectral_distance_db``
        (:func:`log_spectral_distance_db`, reconstruction vs original) and
        ``log_spectral_distance_db_noise`` (white noise of the original's RMS vs the original: the
        score of a reconstruction that kept only the loudness), ``rms_ratio`` (reconstruction /
        original), ``harmonic_energy_ratio`` (:func:`harmonic_energy_ratio` of the reconstruction at
        the original's f0, or the MIDI pitch's where the original has none, after the first quarter
        of the note, where generation builds up from silence) with ``harmonic_energy_ratio_original``
        and ``harmonic_energy_ratio_noise`` for the original and the noise, ``audio`` (the
        reconstruction, float32).
    """
    from nsynth_live.functional.midi import cents_between, midi_to_hz
    from nsynth_live.functional.spectral import spectral_loss
    from nsynth_live.runtime.wavenet_generate import WaveNetGenerator

    hop = model.config.hop_length_samples
    originals = [dataset.load_audio(n) for n in note_strs]
    length = min(a.shape[0] for a in originals)
    if duration_seconds is not None:
        length = min(length, int(duration_seconds * model.config.sample_rate))
    length = max(hop, length // hop * hop)
    batch = torch.from_numpy(np.stack([a[:length] for a in originals]))
    model = model.eval()
    with torch.inference_mode():
        encodings = model.encode(batch)
    generator = WaveNetGenerator(model.decoder, device=device, dtype=dtype)
    audio = generator.generate(encodings, seed=seed, temperature=temperature, progress=progress)
    results = []
    rate = model.config.sample_rate
    for index, note_str in enumerate(note_strs):
        pitch = dataset.note(note_str).pitch
        original = batch[index].numpy().astype(np.float64)
        # reference scale: white noise with the original's RMS
        noise = np.random.default_rng(seed).normal(0.0, np.sqrt(np.mean(original ** 2)), original.shape)
        f0_rec = estimate_f0_hz_or_nan(audio[index].numpy(), sample_rate=rate)
        f0_orig = estimate_f0_hz_or_nan(batch[index].numpy(), sample_rate=rate)
        target = float(midi_to_hz(pitch))
        f0_ref = f0_orig if math.isfinite(f0_orig) else target
        results.append({
            "note_str": note_str,
            "pitch_midi": pitch,
            "f0_original_hz": f0_orig,
            "f0_reconstruction_hz": f0_rec,
            "pitch_error_cents": (float(cents_between(f0_rec, f0_orig))
                                  if math.isfinite(f0_rec) and math.isfinite(f0_orig) else float("nan")),
            "pitch_error_vs_midi_cents": float(cents_between(f0_rec, target)) if math.isfinite(f0_rec) else float("nan"),
            "original_pitch_error_cents": float(cents_between(f0_orig, target)) if math.isfinite(f0_orig) else float("nan"),
            "spectral_distance": float(spectral_loss(audio[index][None], batch[index][None])),
            "spectral_distance_silence": float(spectral_loss(torch.zeros(1, length), batch[index][None])),
            "log_spectral_distance_db": log_spectral_distance_db(audio[index].numpy(), original),
            "log_spectral_distance_db_noise": log_spectral_distance_db(noise, original),
            "rms_ratio": float(np.sqrt(np.mean(audio[index].numpy() ** 2) / max(np.mean(original ** 2), 1e-20))),
            **{f"harmonic_energy_ratio{suffix}": harmonic_energy_ratio(signal[length // 4:], f0_ref, sample_rate=rate)
               for suffix, signal in (("", audio[index].numpy()), ("_original", original), ("_noise", noise))},
            "audio": audio[index].numpy(),
        })
    return results


@contextlib.contextmanager
def _teacher_forced_inputs(model: WaveNetAutoencoder, audio: torch.Tensor):
    """Model in eval and inference mode, yielding ``(x_scaled, targets, encoding)`` of ``audio``;
    the model's training flag is restored on exit."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            x_scaled, targets = model.quantize(audio)
            x_scaled = x_scaled.to(model._dtype)
            yield x_scaled, targets, model.encoder(x_scaled)
    finally:
        model.train(was_training)


def teacher_forced_losses(model: WaveNetAutoencoder, audio: torch.Tensor, *, past_shift_samples: int = 8) -> dict:
    """Teacher-forced cross-entropy of notes, and what it becomes without each of the decoder's inputs.

    The decoder predicts sample ``t`` from the samples before it and the note's embedding; feeding
    it a broken copy of one of them shows how much it leans on that input.

    Parameters
    ----------
    model : WaveNetAutoencoder
    audio : torch.Tensor, float32, shape (batch >= 2, time), in [-1, 1]
        ``time`` a positive multiple of the hop.
    past_shift_samples : int
        Delay of the past in ``"past_shifted"``.

    Returns
    -------
    dict
        Nats per sample (floats): ``"true"`` (the training loss), ``"past_zeroed"`` (the decoder sees
        silence, the embedding only), ``"past_shifted"`` (the past delayed by
        ``past_shift_samples``, scored from one receptive field plus the shift on, where no
        wrapped-around sample is seen), ``"other_notes_embeddings"`` (note ``i`` gets note
        ``i - 1``'s embedding); and ``"true_per_note"``, a list of each note's ``"true"`` loss.

    Raises
    ------
    ValueError
        For fewer than 2 notes, or a length that is not a positive multiple of the hop.
    """
    from torch.nn import functional as F

    if audio.ndim != 2 or audio.shape[0] < 2:
        raise ValueError(f"audio must have shape (batch >= 2, time), got {tuple(audio.shape)}")
    with _teacher_forced_inputs(model, audio) as (x_scaled, targets, encoding):

        def loss(x, en, start=0):
            return float(F.cross_entropy(model.decoder(x, en)[..., start:], targets[:, start:]))

        per_note = F.cross_entropy(model.decoder(x_scaled, encoding), targets, reduction="none").mean(dim=1)
        return {
            "true": float(per_note.mean()),
            "true_per_note": per_note.tolist(),
            "past_zeroed": loss(torch.zeros_like(x_scaled), encoding),
            "past_shifted": loss(torch.roll(x_scaled, past_shift_samples, dims=1), encoding,
                                 start=min(model.config.decoder_receptive_field_samples + past_shift_samples,
                                           x_scaled.shape[1] - 1)),
            "other_notes_embeddings": loss(x_scaled, torch.roll(encoding, 1, dims=0)),
        }


def loss_by_past_length(model: WaveNetAutoencoder, audio: torch.Tensor) -> dict:
    """Teacher-forced loss of each sample as a function of how much of its past the decoder sees.

    Shows whether the decoder has learned to use the sample one pitch period back (the long-lag
    predictor that keeps a note pitched when it generates): for a note of period ``P`` samples, the
    loss should fall as the visible past grows past ``P``. Each note is cut into windows of
    ``W = (ceil(R / hop) + 1) * hop`` samples, ``R`` the decoder's receptive field, starting at every
    hop; the decoder runs on each window alone (the past before it read as silence, as at the start
    of a training crop) with the embedding of the whole note, so sample ``p`` of a window sees ``p``
    samples of past. Losses are averaged in bins of ``p``.

    Parameters
    ----------
    model : WaveNetAutoencoder
    audio : torch.Tensor, float32, shape (batch, time), in [-1, 1]
        ``time`` a multiple of the hop and at least ``W``.

    Returns
    -------
    dict
        ``"edges_samples"``: bin edges ``0, 1, 2, 4, .., R, W`` (bin ``i`` is ``[edges[i],
        edges[i+1])`` samples of past; the last bin has the full receptive field);
        ``"per_note"``: ``(batch, bins)`` nested lists of nats per sample; ``"mean"``: over notes.

    Raises
    ------
    ValueError
        For audio that is not 2-D, or a length that is not a multiple of the hop or is shorter
        than ``W``.
    """
    from torch.nn import functional as F

    hop = model.config.hop_length_samples
    field = model.config.decoder_receptive_field_samples
    window = past_length_window_samples(model.config)
    if audio.ndim != 2 or audio.shape[1] % hop or audio.shape[1] < window:
        raise ValueError(f"audio must have shape (batch, time) with time a multiple of {hop} and at least "
                         f"{window} samples, got {tuple(audio.shape)}")
    edges = [0] + [2 ** k for k in range(int(math.log2(field)) + 1) if 2 ** k < field] + [field, window]
    with _teacher_forced_inputs(model, audio) as (x_scaled, targets, encoding):
        frames = window // hop
        total = torch.zeros(audio.shape[0], window, dtype=torch.float64)
        starts = range(0, encoding.shape[1] - frames + 1)
        for frame in starts:
            begin = frame * hop
            logits = model.decoder(x_scaled[:, begin:begin + window], encoding[:, frame:frame + frames])
            total += F.cross_entropy(logits.float(), targets[:, begin:begin + window], reduction="none").cpu().double()
        per_position = total / len(starts)
        per_note = torch.stack([per_position[:, a:b].mean(dim=1) for a, b in zip(edges[:-1], edges[1:])], dim=1)
        return {"edges_samples": edges, "per_note": per_note.tolist(), "mean": per_note.mean(dim=0).tolist()}


def past_length_window_samples(config) -> int:
    """Window length of :func:`loss_by_past_length`: the decoder's receptive field rounded up to whole
    hops, plus one hop (samples); a note must be at least this long."""
    hop = config.hop_length_samples
    return (math.ceil(config.decoder_receptive_field_samples / hop) + 1) * hop


def linear_prediction_losses(audio: np.ndarray, *, period_samples: float, short_term_order: int = 32,
                             period_taps: int = 5) -> dict:
    """Nats per sample of a note's mu-law classes under two linear predictors fitted to the note itself.

    A reference for the decoder's teacher-forced loss, and for how much it can gain from the
    sample one pitch period back (the long-lag predictor; compare :func:`loss_by_past_length`).
    Both predictors see the note as the decoder does, mu-law quantized to bin centres (Magenta
    binning, :func:`~nsynth_live.functional.mu_law.mu_law_decode`); each is fitted by least squares
    on the note it scores (an oracle: it knows the note), and its residual is taken as Gaussian
    with the residual's variance, integrated over the exact mu-law bin of each target (the class
    ``q + 128`` covers compressed values ``[q/128, (q+1)/128)``; the outer bins are open).

    - ``"short_term"``: lags ``1 .. short_term_order`` (linear predictive coding: the spectral
      envelope).
    - ``"short_term_and_period"``: those lags and ``period_taps`` lags centred on the rounded
      period (a long-term or pitch predictor, as in speech coding). For a period within the short
      lags it adds little.

    Both are scored on the same samples: from the largest lag on.

    Parameters
    ----------
    audio : numpy.ndarray, float, shape (time,), in [-1, 1]
    period_samples : float
        The note's pitch period, ``sample_rate / f0`` (samples, >= 2).
    short_term_order : int
        Short-term lags (>= 1).
    period_taps : int
        Lags around the period (odd, >= 1).

    Returns
    -------
    dict
        ``"short_term"``, ``"short_term_and_period"`` (nats per sample, floats) and
        ``"period_lags"`` (the period's lags used, ints).

    Raises
    ------
    ValueError
        For audio that is not 1-D or not finite, a period below 2 samples, a bad order or tap
        count, or a note shorter than the largest lag plus 8 samples per predictor coefficient.
    """
    from nsynth_live.functional.mu_law import mu_law_class_edges, mu_law_code_to_class, mu_law_decode, mu_law_encode

    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"audio must have shape (time,), got {x.shape}")
    if not period_samples >= 2:
        raise ValueError(f"period_samples must be >= 2, got {period_samples}")
    if short_term_order < 1 or period_taps < 1 or period_taps % 2 == 0:
        raise ValueError(f"short_term_order must be >= 1 and period_taps odd and >= 1, got "
                         f"{short_term_order} and {period_taps}")
    centre, half = int(round(period_samples)), period_taps // 2
    period_lags = list(range(max(1, centre - half), centre + half + 1))
    short_lags = list(range(1, short_term_order + 1))
    both_lags = sorted(set(short_lags) | set(period_lags))
    first = max(both_lags)
    if x.shape[0] < first + 8 * len(both_lags):
        raise ValueError(f"audio of {x.shape[0]} samples is too short for lags up to {first}: need at least "
                         f"{first + 8 * len(both_lags)}")
    codes = mu_law_encode(x)  # raises on NaN / infinity
    values = mu_law_decode(codes).astype(np.float64)
    targets = mu_law_code_to_class(codes)[first:]
    edges = mu_law_class_edges()
    lower, upper = torch.from_numpy(edges[targets]), torch.from_numpy(edges[targets + 1])
    y = values[first:]

    def nats(lags):
        design = np.stack([values[first - lag: x.shape[0] - lag] for lag in lags], axis=1)
        weights, *_ = np.linalg.lstsq(design, y, rcond=None)
        prediction = torch.from_numpy(design @ weights)
        scale = max(float(np.std(y - prediction.numpy())), 1e-6)
        probability = torch.special.ndtr((upper - prediction) / scale) - torch.special.ndtr((lower - prediction) / scale)
        return float(-torch.log(probability.clamp_min(1e-12)).mean())

    return {"short_term": nats(short_lags), "short_term_and_period": nats(both_lags), "period_lags": period_lags}


def load_trained_model(run_dir, weights: str = "ema") -> WaveNetAutoencoder:
    """The trained model of a run folder.

    Parameters
    ----------
    run_dir : str or Path
    weights : str
        ``"ema"``: the moving average of the weights (``model.pt``, what decoding uses);
        ``"raw"``: the optimizer's latest weights (from ``train_state.pt``).

    Raises
    ------
    CheckpointError
        If the file does not exist (the message says to train first) or is not a WaveNet checkpoint.
    ValueError
        For another ``weights``.
    """
    if weights not in TRAINED_WEIGHTS:
        raise ValueError(f"weights must be one of {TRAINED_WEIGHTS}, got {weights!r}")
    path = Path(run_dir) / (MODEL_FILE if weights == "ema" else TRAIN_STATE_FILE)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist: train first (export/train_wavenet.py)")
    return WaveNetAutoencoder.load(path)
