"""SING's three-stage training recipe (Defossez et al. 2018, section 4) on an NSynth-format dataset.

1. Autoencoder (encoder + decoder) with the spectral loss.
2. The sequence generator (LSTM) regresses the frozen encoder's embeddings (MSE, truncated
   backpropagation through time over 32 frames).
3. End to end: sequence generator + decoder with the spectral loss over whole notes.

Everything lives in one run folder; ``train_state.pt`` is rewritten atomically after every epoch,
and running the same command again resumes from it (a finished run goes straight to the end).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from nsynth_live.data.nsynth import NSynthDataset
from nsynth_live.functional.spectral import SPECTRAL_N_FFT, multi_resolution_spectral_loss, spectral_loss
from nsynth_live.fileio import atomic_output
from nsynth_live.models.checkpoint import CheckpointError
from nsynth_live.models.sing import Sing, SingEncoder, crop_frames, decoder_target, pad_note
from nsynth_live.models.sing_configs import SingConfig

logger = logging.getLogger(__name__)

TRAIN_STATE_FORMAT_VERSION = 1
STAGES = ("autoencoder", "sequence", "end_to_end", "done")


@dataclass(frozen=True)
class SingTrainConfig:
    """Recipe of a training run (SING section 4; epochs scaled down for a 2-core CPU).

    Attributes
    ----------
    autoencoder_epochs, sequence_epochs, end_to_end_epochs : int
        Epochs of stages 1-3 (the paper: 50, 50, 20 on NSynth's 289k notes).
    batch_size : int
        Notes per batch (paper 256, code 64).
    learning_rate : float
        Adam learning rate (paper 3e-4).
    tbptt_frames : int
        Truncated backpropagation window of stage 2, in frames (32).
    crop_frames : int
        Stages 1 and 3 decode random windows of this many embedding frames (64 = 1 s) instead of
        whole notes (265 frames): the decoder is convolutional, so a crop's output is exactly the
        whole note's output there, at a quarter of the cost; the LSTM still runs over whole notes.
    holdout_fraction : float
        Share of each instrument's pitches held out with all their velocities (pitch completion, 0.1).
    spectral_distance : {"mse", "l1"}
        Distance between log power spectrograms in stages 1 and 3. "mse" is the default of SING's
        code; "l1" is the paper's headline. On our clean, sparse SoundFont spectra (98% of bins
        near silence) L1 drives the autoencoder to silence within ~20 steps, MSE does not
        (measured); evaluation always reports the paper's L1.
    spectral_n_ffts : tuple of int
        STFT window lengths (samples; hop a quarter of each) of that loss, averaged
        (``multi_resolution_spectral_loss``). ``(1024,)`` is SING's loss; its 15.6-Hz bins hardly
        see the pitch of low notes, so our recipe adds 4096 and 8192.
    seed : int
        Seeds the split, the initialisation and the batch order.
    threads : int
        ``torch.set_num_threads`` during training.
    """

    autoencoder_epochs: int = 20
    sequence_epochs: int = 6
    end_to_end_epochs: int = 14
    batch_size: int = 32
    learning_rate: float = 1e-3
    crop_frames: int = 64
    tbptt_frames: int = 32
    holdout_fraction: float = 0.1
    spectral_distance: str = "mse"
    spectral_n_ffts: tuple[int, ...] = (SPECTRAL_N_FFT,)
    seed: int = 0
    threads: int = 2

    def __post_init__(self):
        for name in ("autoencoder_epochs", "sequence_epochs", "end_to_end_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.crop_frames < 16:
            raise ValueError(f"crop_frames must be >= 16 (the decoder kernel needs 9), got {self.crop_frames}")
        if self.batch_size < 1 or self.tbptt_frames < 1 or self.threads < 1:
            raise ValueError("batch_size, tbptt_frames and threads must be >= 1")
        if self.spectral_distance not in ("mse", "l1"):
            raise ValueError(f"spectral_distance must be 'mse' or 'l1', got {self.spectral_distance!r}")
        if not self.spectral_n_ffts or any(int(n) != n or n < 4 for n in self.spectral_n_ffts):
            raise ValueError(f"spectral_n_ffts must be one or more window lengths >= 4 samples, got {self.spectral_n_ffts}")
        object.__setattr__(self, "spectral_n_ffts", tuple(int(n) for n in self.spectral_n_ffts))
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {self.holdout_fraction}")


def pitch_completion_split(dataset: NSynthDataset, *, holdout_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """SING's pitch-completion split: per instrument, a ``holdout_fraction`` of its pitches (all velocities).

    Returns
    -------
    train_indices, heldout_indices : lists of note indices into ``dataset.notes``
    """
    rng = np.random.default_rng(seed)
    heldout_pitches: dict[str, set[int]] = {}
    for instrument in dataset.instruments():
        pitches = sorted({n.pitch for n in dataset.notes if n.instrument_str == instrument})
        count = int(round(holdout_fraction * len(pitches)))
        heldout_pitches[instrument] = set(rng.choice(pitches, size=count, replace=False).tolist()) if count else set()
    train, heldout = [], []
    for i, n in enumerate(dataset.notes):
        (heldout if n.pitch in heldout_pitches[n.instrument_str] else train).append(i)
    return train, heldout


class NoteTensors:
    """A dataset split held in memory: audio ``(notes, 64000)`` float32 and conditioning tensors."""

    def __init__(self, dataset: NSynthDataset, indices: list[int], instrument_names: list[str]):
        notes = [dataset.notes[i] for i in indices]
        self.notes = notes
        self.audio = torch.from_numpy(np.stack([dataset.load_audio(n.note_str) for n in tqdm(notes, desc="loading", leave=False)]))
        self.instrument = torch.tensor([instrument_names.index(n.instrument_str) for n in notes])
        self.pitch = torch.tensor([n.pitch for n in notes])
        self.velocity = torch.tensor([float(n.velocity) for n in notes])

    def __len__(self) -> int:
        return len(self.notes)


def _batches(count: int, batch_size: int, generator: torch.Generator | None):
    order = torch.randperm(count, generator=generator) if generator is not None else torch.arange(count)
    return [order[i:i + batch_size] for i in range(0, count, batch_size)]


class SingTrainer:
    """Runs (and resumes) the three stages in ``run_dir``."""

    def __init__(self, *, dataset_dir: str | Path, run_dir: str | Path, model_config: SingConfig,
                 train_config: SingTrainConfig):
        self.run_dir = Path(run_dir)
        self.state_path = self.run_dir / "train_state.pt"
        self.dataset = NSynthDataset(dataset_dir)
        self.instrument_names = self.dataset.instruments()
        if len(self.instrument_names) != model_config.num_instruments:
            raise ValueError(
                f"the dataset has {len(self.instrument_names)} instruments but the model config has "
                f"num_instruments={model_config.num_instruments}: pass a matching config"
            )
        self.model_config = model_config
        self.train_config = train_config
        torch.manual_seed(train_config.seed)
        self.encoder = SingEncoder(model_config)
        self.sing = Sing(model_config)
        self.stage = STAGES[0]
        self.epoch = 0
        self.history: list[dict] = []
        self.optimizer = self._optimizer_for(self.stage)
        self.train_indices, self.heldout_indices = pitch_completion_split(
            self.dataset, holdout_fraction=train_config.holdout_fraction, seed=train_config.seed
        )
        self.elapsed_seconds = 0.0
        if self.state_path.is_file():
            self._resume()

    # -- state ------------------------------------------------------------------------------
    def _optimizer_for(self, stage: str) -> torch.optim.Optimizer | None:
        if stage == "autoencoder":
            params = list(self.encoder.parameters()) + list(self.sing.decoder.parameters())
        elif stage == "sequence":
            params = list(self.sing.sequence_generator.parameters())
        elif stage == "end_to_end":
            params = list(self.sing.parameters())
        else:
            return None
        return torch.optim.Adam(params, lr=self.train_config.learning_rate)

    def _save(self) -> None:
        state = {
                "format_version": TRAIN_STATE_FORMAT_VERSION,
                "model_config": self.model_config.to_dict(),
                "train_config": asdict(self.train_config),
                "instrument_names": self.instrument_names,
                "stage": self.stage,
                "epoch": self.epoch,
                "encoder": self.encoder.state_dict(),
                "sing": self.sing.state_dict(),
                "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
                "history": self.history,
                "elapsed_seconds": self.elapsed_seconds,
                "torch_rng": torch.get_rng_state(),
        }
        with atomic_output(self.state_path) as temporary:
            torch.save(state, temporary)

    def _resume(self) -> None:
        try:
            data = torch.load(self.state_path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise CheckpointError(f"{self.state_path} is corrupt: {exc}; delete it to start over") from exc
        if data.get("format_version") != TRAIN_STATE_FORMAT_VERSION:
            raise CheckpointError(f"{self.state_path}: unknown format_version {data.get('format_version')!r}")
        saved = dict(data["train_config"])
        saved.setdefault("spectral_n_ffts", (SPECTRAL_N_FFT,))  # runs from before the option had SING's loss
        saved["spectral_n_ffts"] = tuple(saved["spectral_n_ffts"])
        wanted = asdict(self.train_config)
        epoch_fields = {f"{stage}_epochs" for stage in STAGES[:3]}
        if data["model_config"] != self.model_config.to_dict() or {
            k: v for k, v in saved.items() if k not in epoch_fields
        } != {k: v for k, v in wanted.items() if k not in epoch_fields}:
            raise CheckpointError(
                f"{self.state_path} was written with another model or training config: use another run folder"
            )
        self.encoder.load_state_dict(data["encoder"])
        self.sing.load_state_dict(data["sing"])
        self.stage, self.epoch = data["stage"], data["epoch"]
        self.history = data["history"]
        self.elapsed_seconds = data["elapsed_seconds"]
        self.optimizer = self._optimizer_for(self.stage)
        if self.optimizer is not None and data["optimizer"] is not None:
            self.optimizer.load_state_dict(data["optimizer"])
        torch.set_rng_state(data["torch_rng"])
        self._apply_epoch_counts()
        logger.info("resumed %s at stage %s epoch %d", self.state_path, self.stage, self.epoch)

    def _apply_epoch_counts(self) -> None:
        """Let a resumed run have other epoch counts than it was started with.

        Stages already finished must keep their count (their result is in the weights); the stage in
        progress may be lengthened or shortened; a finished run whose ``end_to_end_epochs`` was raised
        goes back to stage 3 and trains the extra epochs (with a fresh Adam state).

        Raises
        ------
        CheckpointError
            If the count of a finished stage differs from the epochs it ran.
        """
        done = {stage: sum(1 for h in self.history if h["stage"] == stage) for stage in STAGES[:3]}
        current = STAGES.index(self.stage)
        for stage in STAGES[:min(current, 3)]:
            wanted = getattr(self.train_config, f"{stage}_epochs")
            if stage == "end_to_end" and self.stage == "done" and wanted > done[stage]:
                self.stage, self.epoch = stage, done[stage]
                self.optimizer = self._optimizer_for(stage)
                return
            if wanted != done[stage]:
                raise CheckpointError(
                    f"{self.state_path}: stage {stage} finished after {done[stage]} epochs, {wanted} asked; "
                    "only the stage in progress (or a finished run's end_to_end_epochs, upwards) can change"
                )

    def _advance_stage(self) -> None:
        self.stage = STAGES[STAGES.index(self.stage) + 1]
        self.epoch = 0
        self.optimizer = self._optimizer_for(self.stage)
        self._save()

    # -- training ---------------------------------------------------------------------------
    def run(self, *, max_epochs: int | None = None) -> None:
        """Train every stage that is not finished yet.

        Parameters
        ----------
        max_epochs : int, optional
            Return after this many epochs (checkpointed) even if stages remain; the next ``run`` or a
            new trainer on the same run folder continues from there.
        """
        cfg = self.train_config
        torch.set_num_threads(cfg.threads)
        # Quiet notes and their gradients produce denormal floats, which cost ~25% on x86 CPUs.
        torch.set_flush_denormal(True)
        epochs = {"autoencoder": cfg.autoencoder_epochs, "sequence": cfg.sequence_epochs,
                  "end_to_end": cfg.end_to_end_epochs}
        if self.stage == "done":
            return
        train = NoteTensors(self.dataset, self.train_indices, self.instrument_names)
        monitor = NoteTensors(self.dataset, self.heldout_indices[:: max(1, len(self.heldout_indices) // 48)],
                              self.instrument_names)
        embeddings = None
        epochs_run = 0
        while self.stage != "done" and (max_epochs is None or epochs_run < max_epochs):
            if self.epoch >= epochs[self.stage]:
                self._advance_stage()
                continue
            if self.stage == "sequence" and embeddings is None:
                embeddings = self.encode(train.audio)
            started = time.monotonic()
            generator = torch.Generator().manual_seed(cfg.seed * 1000 + STAGES.index(self.stage) * 100 + self.epoch)
            loss = {"autoencoder": self._autoencoder_epoch, "sequence": self._sequence_epoch,
                    "end_to_end": self._end_to_end_epoch}[self.stage](train, embeddings, generator)
            self.elapsed_seconds += time.monotonic() - started
            self.epoch += 1
            entry = {"stage": self.stage, "epoch": self.epoch, "train_loss": loss,
                     "elapsed_seconds": round(self.elapsed_seconds, 1)}
            entry.update({f"heldout_l1_{k}": round(v, 5) for k, v in self.spectral_losses(monitor).items()})
            self.history.append(entry)
            logger.info("%s epoch %d: %s", self.stage, self.epoch, entry)
            self._save()
            epochs_run += 1

    def _step(self, loss: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def _spectral_loss(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss of stages 1 and 3 (``spectral_distance`` over ``spectral_n_ffts``)."""
        return multi_resolution_spectral_loss(estimate, target, n_ffts=self.train_config.spectral_n_ffts,
                                              distance=self.train_config.spectral_distance)

    def _crop_starts(self, count: int, generator: torch.Generator) -> torch.Tensor:
        frames = min(self.train_config.crop_frames, self.model_config.time_steps)
        return torch.randint(0, self.model_config.time_steps - frames + 1, (count,), generator=generator)

    def _autoencoder_epoch(self, train: NoteTensors, _embeddings, generator) -> float:
        self.encoder.train(), self.sing.train()
        frames = min(self.train_config.crop_frames, self.model_config.time_steps)
        losses = []
        for idx in tqdm(_batches(len(train), self.train_config.batch_size, generator), desc=f"autoencoder {self.epoch + 1}", leave=False):
            starts = self._crop_starts(len(idx), generator)
            audio, target = crop_frames(pad_note(train.audio[idx], self.model_config), starts, frames, self.model_config)
            estimate = self.sing.decoder(self.encoder(audio))
            losses.append(self._step(self._spectral_loss(estimate, target)))
        return float(np.mean(losses))

    @torch.no_grad()
    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Encoder embeddings of notes ``(notes, 64000)`` -> ``(notes, 265, embedding_dims)``."""
        self.encoder.eval()
        out = [self.encoder(pad_note(audio[i:i + 64], self.model_config)) for i in range(0, len(audio), 64)]
        return torch.cat(out)

    def _sequence_epoch(self, train: NoteTensors, embeddings: torch.Tensor, generator) -> float:
        gen = self.sing.sequence_generator
        gen.train()
        window = self.train_config.tbptt_frames
        losses = []
        for idx in tqdm(_batches(len(train), self.train_config.batch_size, generator), desc=f"sequence {self.epoch + 1}", leave=False):
            state = None
            for start in range(0, self.model_config.time_steps, window):
                frames = min(window, self.model_config.time_steps - start)
                inst = gen.instrument_table(train.instrument[idx])
                estimate, state = gen(inst, train.pitch[idx], train.velocity[idx], state, start_frame=start, frames=frames)
                losses.append(self._step(F.mse_loss(estimate, embeddings[idx, start:start + frames])))
                state = tuple(s.detach() for s in state)
        return float(np.mean(losses))

    def _end_to_end_epoch(self, train: NoteTensors, _embeddings, generator) -> float:
        self.sing.train()
        frames = min(self.train_config.crop_frames, self.model_config.time_steps)
        gen = self.sing.sequence_generator
        losses = []
        for idx in tqdm(_batches(len(train), self.train_config.batch_size, generator), desc=f"end to end {self.epoch + 1}", leave=False):
            embeddings, _ = gen(gen.instrument_table(train.instrument[idx]), train.pitch[idx], train.velocity[idx])
            starts = self._crop_starts(len(idx), generator)
            _, target = crop_frames(pad_note(train.audio[idx], self.model_config), starts, frames, self.model_config)
            window = embeddings.gather(1, (starts[:, None] + torch.arange(frames))[:, :, None].expand(-1, -1, embeddings.shape[2]))
            estimate = self.sing.decoder(window)
            losses.append(self._step(self._spectral_loss(estimate, target)))
        return float(np.mean(losses))

    # -- evaluation -------------------------------------------------------------------------
    @torch.no_grad()
    def spectral_losses(self, notes: NoteTensors) -> dict[str, float]:
        """Mean L1 spectral loss (the paper's) of SING, of the autoencoder (its upper bound) and of
        silence (a floor any working model must beat) on ``notes``."""
        self.sing.eval(), self.encoder.eval()
        totals = {"sing": 0.0, "autoencoder": 0.0, "silence": 0.0}
        for idx in _batches(len(notes), 64, None):
            target = decoder_target(notes.audio[idx], self.model_config)
            estimates = {
                "sing": self.sing(self.sing.instrument_embedding(notes.instrument[idx]), notes.pitch[idx], notes.velocity[idx]),
                "autoencoder": self.sing.decoder(self.encoder(pad_note(notes.audio[idx], self.model_config))),
                "silence": torch.zeros_like(target),
            }
            for name, estimate in estimates.items():
                totals[name] += spectral_loss(estimate, target).item() * len(idx)
        return {name: total / len(notes) for name, total in totals.items()}

    def dataset_summary(self) -> dict:
        families = sorted({n.instrument_family_str for n in self.dataset.notes})
        return {
            "notes": len(self.dataset), "train_notes": len(self.train_indices),
            "heldout_notes": len(self.heldout_indices), "instruments": len(self.instrument_names),
            "families": families,
        }

