"""Training of model v3 (:class:`~nsynth_live.models.sing_harmonic.SingHarmonic`) on a 48-kHz NSynth-format set.

One stage, end to end: the LSTM's controls drive the synthesiser, and the multi-resolution spectral
loss of DDSP (Engel et al. 2020, section 4.2.1: L1 of linear and of log magnitudes, FFT sizes 2048 ..
64) compares random crops of the output with the same crops of the SoundFont notes. The LSTM runs
from each note's start to its crop's end; only the crop is synthesised (hops render independently:
:mod:`nsynth_live.functional.harmonic_synth`). No autoencoder and no embedding regression are needed:
the synthesiser has no weights to pre-train.

Resumable: ``train_state.pt`` in the run folder is rewritten atomically every ``save_every_steps``
steps and at the end; running again continues from it, with the same batch order.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from nsynth_live.data.nsynth import NSynthDataset
from nsynth_live.fileio import atomic_output
from nsynth_live.models.checkpoint import CheckpointError
from nsynth_live.models.sing_configs import SingHarmonicConfig
from nsynth_live.models.sing_harmonic import SingHarmonic
from nsynth_live.train.sing import pitch_completion_split

logger = logging.getLogger(__name__)

TRAIN_STATE_FORMAT_VERSION = 1
# Settings a resumed run must share with the saved one (they decide the batches and the loss); steps,
# threads and save_every_steps may change between runs.
RESUME_KEYS = ("batch_size", "crop_frames", "attack_crop_share", "learning_rate", "lr_decay", "spectral_n_ffts",
               "holdout_fraction", "gradient_frames_before", "seed")
LOG_MAGNITUDE_EPS = 1e-5  # floor of log(|STFT|), full scale 1.0 (DDSP uses 1e-7; 1e-5 = -100 dB at n_fft 2048)


@dataclass(frozen=True)
class HarmonicTrainConfig:
    """Recipe of a v3 training run.

    Attributes
    ----------
    steps : int
        Optimiser steps in all.
    batch_size : int
        Notes per step.
    crop_frames : int
        Hops synthesised per note per step (40 = 0.43 s at 48 kHz / 512).
    attack_crop_share : float
        Share of crops that start at the note's first frame (the attack is short and matters most).
    learning_rate : float
        Adam's, decayed by ``lr_decay`` over the run (exponentially).
    lr_decay : float
        Learning rate at the end over the start.
    spectral_n_ffts : tuple of int
        FFT sizes of the multi-resolution loss (hop a quarter of each).
    holdout_fraction : float
        Pitch-completion split (SING section 4): share of each instrument's pitches held out.
    gradient_frames_before : int
        Truncated backpropagation: frames before a crop through which the LSTM gets gradient (the
        LSTM runs from the note's start either way).
    save_every_steps : int
        Steps between two writes of ``train_state.pt``.
    seed : int
    threads : int
        ``torch.set_num_threads``.
    """

    steps: int = 3000
    batch_size: int = 16
    crop_frames: int = 40
    attack_crop_share: float = 0.25
    learning_rate: float = 2e-3
    lr_decay: float = 0.1
    spectral_n_ffts: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64)
    holdout_fraction: float = 0.1
    gradient_frames_before: int = 24
    save_every_steps: int = 100
    seed: int = 0
    threads: int = 2

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1 or self.crop_frames < 1 or self.save_every_steps < 1:
            raise ValueError("steps must be >= 0; batch_size, crop_frames and save_every_steps >= 1")
        if not 0.0 <= self.attack_crop_share <= 1.0 or not 0.0 < self.lr_decay <= 1.0:
            raise ValueError("attack_crop_share must be in [0, 1] and lr_decay in (0, 1]")
        object.__setattr__(self, "spectral_n_ffts", tuple(int(n) for n in self.spectral_n_ffts))


def ddsp_spectral_loss(estimate: torch.Tensor, target: torch.Tensor, *, n_ffts=(2048, 1024, 512, 256, 128, 64)) -> torch.Tensor:
    """DDSP's multi-scale spectral loss (Engel et al. 2020, section 4.2.1): over FFT sizes, the mean
    absolute difference of STFT magnitudes plus that of their logs (``log(|S| + 1e-5)``).

    Parameters
    ----------
    estimate, target : (batch, time) float32, full scale 1.0, ``time >= max(n_ffts)``

    Returns
    -------
    Scalar tensor (sum over sizes of the two means).

    Raises
    ------
    ValueError
        If the shapes differ or the audio is shorter than the largest FFT.
    """
    if estimate.shape != target.shape:
        raise ValueError(f"estimate {tuple(estimate.shape)} and target {tuple(target.shape)} must have one shape")
    if estimate.shape[-1] < max(n_ffts):
        raise ValueError(f"the audio ({estimate.shape[-1]} samples) is shorter than a {max(n_ffts)}-point FFT")
    total = estimate.new_zeros(())
    for n_fft in n_ffts:
        window = torch.hann_window(n_fft, device=estimate.device)
        both = torch.stft(torch.cat([estimate, target]), n_fft=n_fft, hop_length=n_fft // 4, window=window,
                          center=False, return_complex=True).abs()
        est, tgt = both[: estimate.shape[0]], both[estimate.shape[0]:]
        total = total + (est - tgt).abs().mean() + (torch.log(est + LOG_MAGNITUDE_EPS)
                                                    - torch.log(tgt + LOG_MAGNITUDE_EPS)).abs().mean()
    return total


def _plain(value):
    """Tuples and lists compare equal (a saved config's tuples may come back as lists)."""
    return list(value) if isinstance(value, (list, tuple)) else value


class NoteSet:
    """Notes of a split held in memory as int16 (1.9 GB for the whole 48-kHz set), with conditioning.

    Attributes
    ----------
    audio : (notes, note_samples) int16 tensor
    instrument, pitch : (notes,) int64; velocity : (notes,) float32
    """

    def __init__(self, dataset: NSynthDataset, indices: list[int], instrument_names: list[str], note_samples: int,
                 sample_rate: int):
        self.notes = [dataset.notes[i] for i in indices]
        audio = np.zeros((len(self.notes), note_samples), np.int16)
        for row, note in enumerate(tqdm(self.notes, desc="loading notes", leave=False, mininterval=5)):
            path = dataset.audio_path(note.note_str)
            data, rate = sf.read(path, dtype="int16", always_2d=True)
            if rate != sample_rate:
                raise ValueError(f"{path} is at {rate} Hz; this model trains on {sample_rate} Hz notes "
                                 f"(render a matching set with nsynth-build-dataset --sample-rate {sample_rate})")
            take = min(note_samples, data.shape[0])
            audio[row, :take] = data[:take, 0]
        self.audio = torch.from_numpy(audio)
        self.instrument = torch.tensor([instrument_names.index(n.instrument_str) for n in self.notes])
        self.pitch = torch.tensor([n.pitch for n in self.notes])
        self.velocity = torch.tensor([float(n.velocity) for n in self.notes])

    def __len__(self) -> int:
        return len(self.notes)

    def crops(self, rows: torch.Tensor, first_frame: torch.Tensor, frames: int, hop: int) -> torch.Tensor:
        """Float32 crops ``(len(rows), frames * hop)`` starting at ``first_frame * hop`` (zeros past the end)."""
        offsets = first_frame[:, None] * hop + torch.arange(frames * hop)
        padded = torch.nn.functional.pad(self.audio[rows], (0, frames * hop))
        return padded.gather(1, offsets).to(torch.float32) / 32768.0


class HarmonicTrainer:
    """Trains (and resumes) a :class:`SingHarmonic` in ``run_dir``.

    Raises
    ------
    ValueError
        If the dataset's instruments or sample rate do not fit the model config.
    CheckpointError
        If ``run_dir`` holds a training state of another config or an unknown format.
    """

    def __init__(self, *, dataset_dir: str | Path, run_dir: str | Path, model_config: SingHarmonicConfig,
                 train_config: HarmonicTrainConfig):
        self.run_dir = Path(run_dir)
        self.state_path = self.run_dir / "train_state.pt"
        self.dataset = NSynthDataset(dataset_dir)
        self.instrument_names = self.dataset.instruments()
        if len(self.instrument_names) != model_config.num_instruments:
            raise ValueError(f"the dataset has {len(self.instrument_names)} instruments but the model config has "
                             f"num_instruments={model_config.num_instruments}")
        rates = {n.sample_rate for n in self.dataset.notes}
        if rates != {model_config.sample_rate}:
            raise ValueError(f"the dataset's notes are at {sorted(rates)} Hz; model {model_config.name} is "
                             f"{model_config.sample_rate} Hz: render the set with nsynth-build-dataset "
                             f"--sample-rate {model_config.sample_rate} --format flac")
        self.model_config = model_config
        self.train_config = train_config
        torch.manual_seed(train_config.seed)
        self.model = SingHarmonic(model_config)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=train_config.learning_rate)
        self.step = 0
        self.history: list[dict] = []
        self.elapsed_seconds = 0.0
        self.train_indices, self.heldout_indices = pitch_completion_split(
            self.dataset, holdout_fraction=train_config.holdout_fraction, seed=train_config.seed)
        if self.state_path.is_file():
            self._resume()

    def _save(self) -> None:
        state = {
            "format_version": TRAIN_STATE_FORMAT_VERSION,
            "model": "sing-harmonic",
            "model_config": self.model_config.to_dict(),
            "train_config": asdict(self.train_config),
            "instrument_names": self.instrument_names,
            "step": self.step,
            "model_state": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "history": self.history,
            "elapsed_seconds": self.elapsed_seconds,
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(self.state_path, overwrite=True) as temporary:
            torch.save(state, temporary)

    def _resume(self) -> None:
        try:
            state = torch.load(self.state_path, map_location="cpu", weights_only=True)  # runs no pickled code
        except Exception as exc:  # torch raises several types for a damaged file
            raise CheckpointError(f"{self.state_path} is not a readable training state ({exc}); delete it to start over") from exc
        if not isinstance(state, dict) or state.get("format_version") != TRAIN_STATE_FORMAT_VERSION or state.get("model") != "sing-harmonic":
            raise CheckpointError(f"{self.state_path} is not a v3 training state of this version; delete it or "
                                  "choose another --run-dir")
        if state["model_config"] != self.model_config.to_dict():
            raise CheckpointError(f"{self.state_path} trains another model config ({state['model_config'].get('name')}); "
                                  "choose another --run-dir or delete it")
        if list(state.get("instrument_names", [])) != list(self.instrument_names):
            raise CheckpointError(f"{self.state_path} was trained on other instruments than this dataset's "
                                  "(its embedding rows would be misnamed); choose another --run-dir or delete it")
        saved, now = state.get("train_config", {}), asdict(self.train_config)
        changed = sorted(k for k in RESUME_KEYS if _plain(saved.get(k)) != _plain(now[k]))
        if changed:
            raise CheckpointError(f"{self.state_path} was trained with other settings ({', '.join(changed)}): its batches "
                                  "would not continue the same run; choose another --run-dir or delete it")
        self.model.load_state_dict(state["model_state"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.elapsed_seconds = float(state["elapsed_seconds"])
        logger.info("resumed %s at step %d", self.state_path, self.step)

    def _learning_rate(self, step: int) -> float:
        cfg = self.train_config
        return cfg.learning_rate * cfg.lr_decay ** (step / max(1, cfg.steps))

    def _crop_starts(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """One first frame for the whole batch (so the no-gradient LSTM prefix is shared): frame 0 with
        probability ``attack_crop_share``, else uniform over the note."""
        cfg, last = self.train_config, self.model_config.time_steps - self.train_config.crop_frames
        start = int(torch.randint(0, last + 1, (1,), generator=generator))
        if float(torch.rand(1, generator=generator)) < cfg.attack_crop_share:
            start = 0
        return torch.full((count,), start, dtype=torch.long)

    def run(self, *, notes: NoteSet | None = None, max_seconds: float | None = None,
            max_steps_this_call: int | None = None) -> None:
        """Train up to ``train_config.steps``, saving as it goes; stop early once the run's training time
        passes ``max_seconds`` or after ``max_steps_this_call`` steps (a later call resumes)."""
        cfg, mcfg = self.train_config, self.model_config
        if self.step >= cfg.steps:
            return
        torch.set_num_threads(cfg.threads)
        if notes is None:
            notes = NoteSet(self.dataset, self.train_indices, self.instrument_names, mcfg.note_samples, mcfg.sample_rate)
        self.model.train()
        started = time.monotonic()
        last_save = first_step = self.step
        window: list[float] = []
        bar = tqdm(total=cfg.steps, initial=self.step, desc="v3 training", unit="step", mininterval=10)
        while self.step < cfg.steps:
            generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.step)  # resumes identically
            rows = torch.randint(0, len(notes), (cfg.batch_size,), generator=generator)
            first = self._crop_starts(cfg.batch_size, generator)
            target = notes.crops(rows, first, cfg.crop_frames, mcfg.hop_length_samples)
            embedding = self.model.instrument_embedding(notes.instrument[rows])
            estimate = self.model(embedding, notes.pitch[rows], notes.velocity[rows], first_frame=first,
                                  frames=cfg.crop_frames, gradient_frames_before=cfg.gradient_frames_before)
            loss = ddsp_spectral_loss(estimate, target, n_ffts=cfg.spectral_n_ffts)
            for group in self.optimizer.param_groups:
                group["lr"] = self._learning_rate(self.step)
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.step += 1
            window.append(loss.item())
            bar.update(1)
            if self.step % cfg.save_every_steps == 0 or self.step == cfg.steps:
                now = time.monotonic()
                self.elapsed_seconds += now - started
                started = now
                self.history.append({"step": self.step, "loss": float(np.mean(window)),
                                     "elapsed_seconds": round(self.elapsed_seconds, 1)})
                logger.info("step %d loss %.4f (%.0f s)", self.step, np.mean(window), self.elapsed_seconds)
                window = []
                self._save()
                last_save = self.step
            if max_seconds is not None and time.monotonic() - started + self.elapsed_seconds > max_seconds:
                break
            if max_steps_this_call is not None and self.step - first_step >= max_steps_this_call:
                break
        if self.step != last_save:
            self.elapsed_seconds += time.monotonic() - started
            self._save()
        bar.close()
        self.model.eval()
