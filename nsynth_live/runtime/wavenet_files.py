"""File jobs of the WaveNet autoencoder: WAV -> ``[frames, dims]`` .npy, and .npy -> 16 kHz WAV.

Encodings are stored as Magenta's ``nsynth_generate`` reads them: a float32 ``.npy`` of shape
``(frames, bottleneck_dims)`` per note, named after the input (``a.b.wav`` -> ``a.b.npy``; Magenta's
``.strip(".wav")`` mangled such names). Next to it a JSON sidecar ``<name>.json`` (``format_version``
1) records the number of audio samples before padding, so that decoding trims the output back to
the input's length instead of a whole number of 512-sample frames.

Both jobs write every file atomically (temporary file in the same folder, then ``os.replace``), skip
outputs that already exist unless ``force`` (so a killed job resumes without redoing finished files),
and show a tqdm progress bar.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nsynth_live.fileio import atomic_output, remove_stale_temporaries
from nsynth_live.models.wavenet_ae import WaveNetAutoencoder, pad_to_hop

SIDECAR_FORMAT_VERSION = 1
AUDIO_SUFFIXES = (".wav", ".flac", ".aiff", ".aif", ".ogg")  # what soundfile reads and we collect


# ---------------------------------------------------------------------------- audio in
def load_mono_audio(path, *, sample_rate: int) -> np.ndarray:
    """Read an audio file as mono float32 at ``sample_rate``.

    Stereo (or more channels) is averaged to mono and another sample rate is resampled with soxr
    (high quality); each emits a ``UserWarning`` naming the file.

    Parameters
    ----------
    path : str or Path
    sample_rate : int
        Hz wanted.

    Returns
    -------
    numpy.ndarray, float32, shape (time,)

    Raises
    ------
    ValueError
        If the file holds no samples.
    """
    import soundfile

    audio, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (time, channels)
    if audio.shape[0] == 0:
        raise ValueError(f"{str(path)!r} holds no audio samples")
    if audio.shape[1] > 1:
        warnings.warn(f"{path}: {audio.shape[1]} channels mixed down to mono", UserWarning, stacklevel=2)
    audio = audio.mean(axis=1)
    if file_rate != sample_rate:
        import soxr

        warnings.warn(f"{path}: resampled from {file_rate} Hz to {sample_rate} Hz", UserWarning, stacklevel=2)
        audio = soxr.resample(audio, file_rate, sample_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(audio, dtype=np.float32)


def collect_files(inputs, *, suffixes) -> list[tuple[Path, Path]]:
    """Files named on the command line or found (recursively) in folders.

    Returns
    -------
    list of (path, relative_stem_path)
        ``relative_stem_path`` is where the output goes relative to the output folder, without
        suffix: the file's name for a file argument, its path below the folder for a folder argument.

    Raises
    ------
    FileNotFoundError
        If an input does not exist.
    ValueError
        If two inputs would write the same output.
    """
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            for path in sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in suffixes):
                relative = path.relative_to(item)
                found.append((path, relative.with_name(relative.name[: -len(path.suffix)])))
        elif item.is_file():
            found.append((item, Path(item.name[: -len(item.suffix)] if item.suffix else item.name)))
        else:
            raise FileNotFoundError(f"input {str(item)!r} does not exist")
    seen: dict[Path, Path] = {}
    for path, stem in found:
        if stem in seen:
            raise ValueError(f"{str(seen[stem])!r} and {str(path)!r} would both write {str(stem)!r}; rename one")
        seen[stem] = path
    return found


# ---------------------------------------------------------------------------- atomic writes
def _atomic_write(path: Path, write) -> None:
    with atomic_output(path) as temporary:  # .<name>.<random>.tmp
        with open(temporary, "wb") as stream:
            write(stream)


def _remove_stale_partials(destinations) -> None:
    """Temporary files that a killed job left for these destinations (``atomic_output`` names them
    ``.<name>.<random><suffix>`` next to each); other files in the folder, another job's included, stay."""
    names_by_folder: dict[Path, set[str]] = {}
    for destination in destinations:
        names_by_folder.setdefault(destination.parent, set()).add(destination.name)
    for folder, names in names_by_folder.items():
        remove_stale_temporaries(folder, names=names)


def save_encoding(path, encoding: np.ndarray, *, num_samples: int, sample_rate: int, source: str = "") -> None:
    """Write ``encoding`` (frames, dims) float32 to ``path`` (.npy) and its JSON sidecar, atomically."""
    path = Path(path)
    encoding = np.ascontiguousarray(encoding, dtype=np.float32)
    sidecar = {
        "format_version": SIDECAR_FORMAT_VERSION,
        "num_samples": int(num_samples),
        "sample_rate": int(sample_rate),
        "frames": int(encoding.shape[0]),
        "source": source,
    }
    _atomic_write(path.with_suffix(".json"), lambda f: f.write(json.dumps(sidecar, indent=1).encode()))
    _atomic_write(path, lambda f: np.save(f, encoding))


def load_encoding(path, *, bottleneck_dims: int, hop_length_samples: int) -> tuple[np.ndarray, int]:
    """Read an encoding and the number of samples to decode.

    Accepts ``(frames, dims)`` and Magenta's ``(1, frames, dims)``.

    Returns
    -------
    encoding : numpy.ndarray, float32, (frames, dims)
    num_samples : int
        From the sidecar if present (trimming padding), else ``frames * hop_length_samples``.

    Raises
    ------
    ValueError
        On another shape, non-finite values, or a sidecar of an unknown format version.
    """
    path = Path(path)
    encoding = np.load(path, allow_pickle=False)
    if encoding.ndim == 3 and encoding.shape[0] == 1:
        encoding = encoding[0]
    if encoding.ndim != 2 or encoding.shape[1] != bottleneck_dims or encoding.shape[0] < 1:
        raise ValueError(
            f"{str(path)!r} has shape {encoding.shape}; expected (frames, {bottleneck_dims}) "
            f"(or (1, frames, {bottleneck_dims}))"
        )
    if not np.all(np.isfinite(encoding)):
        raise ValueError(f"{str(path)!r} contains NaN or infinity")
    num_samples = encoding.shape[0] * hop_length_samples
    sidecar_path = path.with_suffix(".json")
    if sidecar_path.is_file():
        sidecar = json.loads(sidecar_path.read_text())
        if sidecar.get("format_version") != SIDECAR_FORMAT_VERSION:
            raise ValueError(
                f"{str(sidecar_path)!r} has format_version {sidecar.get('format_version')!r}; this "
                f"nsynth-live reads version {SIDECAR_FORMAT_VERSION}: re-encode the audio"
            )
        if sidecar.get("frames") == encoding.shape[0]:
            num_samples = min(num_samples, int(sidecar["num_samples"]))
    return encoding.astype(np.float32), num_samples


# ---------------------------------------------------------------------------- jobs
def encode_files(inputs, out_dir, *, model: WaveNetAutoencoder, device="cpu", force: bool = False,
                 progress: bool = True) -> list[Path]:
    """Encode audio files to ``(frames, dims)`` .npy files in ``out_dir``.

    Audio is read mono at the model's sample rate (warning when mixed down or resampled) and padded
    with zeros to a whole number of frames; the sidecar keeps the unpadded length.

    Parameters
    ----------
    inputs : list of str or Path
        Audio files and/or folders (searched recursively for .wav/.flac/.aif(f)/.ogg).
    out_dir : str or Path
    model : WaveNetAutoencoder
    device : str or torch.device
    force : bool
        Re-encode files whose .npy exists (otherwise they are skipped).
    progress : bool

    Returns
    -------
    list of Path
        The .npy files written in this call.
    """
    from tqdm.auto import tqdm

    from nsynth_live.runtime.wavenet_generate import resolve_device

    device = resolve_device(device)
    out_dir = Path(out_dir)
    config = model.config
    encoder_model = model.to(device).eval()
    jobs = [(path, out_dir / stem.with_name(stem.name + ".npy"))
            for path, stem in collect_files(inputs, suffixes=AUDIO_SUFFIXES)]
    _remove_stale_partials(path for _, out in jobs for path in (out, out.with_suffix(".json")))  # .npy, sidecar
    todo = [(path, out) for path, out in jobs if force or not out.exists()]
    written = []
    for path, out in tqdm(todo, desc="encode", unit="file", disable=not progress):
        audio = load_mono_audio(path, sample_rate=config.sample_rate)
        padded = pad_to_hop(torch.from_numpy(audio)[None], hop_length_samples=config.hop_length_samples)
        with torch.inference_mode():
            encoding = encoder_model.encode(padded.to(device))[0].float().cpu().numpy()
        save_encoding(out, encoding, num_samples=audio.shape[0], sample_rate=config.sample_rate, source=str(path))
        written.append(out)
    return written


@dataclass(frozen=True)
class _DecodeJob:
    source: Path
    out: Path
    encoding: np.ndarray
    num_samples: int


def decode_files(inputs, out_dir, *, generator, batch_size: int = 16, seed: int = 0, temperature: float = 1.0,
                 force: bool = False, progress: bool = True) -> list[Path]:
    """Decode .npy encodings to 16-bit WAV files at the model's sample rate, batched.

    Notes of different lengths share a batch: shorter ones are padded with zero frames, which
    cannot change their own samples (the decoder is causal), and trimmed back. Each WAV is written
    atomically as soon as its batch is done, so a killed job resumes where it stopped. The batches
    are formed over every input, finished or not (notes sorted by length), and a batch with a
    finished note is generated whole again (only its missing files are written): with the same
    inputs, ``batch_size`` and ``seed``, a resumed job writes the same audio as one never stopped.

    Parameters
    ----------
    inputs : list of str or Path
        .npy files and/or folders searched recursively.
    out_dir : str or Path
    generator : nsynth_live.runtime.wavenet_generate.WaveNetGenerator
    batch_size : int
        Notes generated together (GPU: hundreds; CPU: tens).
    seed : int
        Sampling seed of the first batch; batch ``i`` (counting finished ones) uses ``seed + i``.
    temperature : float
    force : bool
        Regenerate notes whose WAV exists (otherwise they are skipped).
    progress : bool

    Returns
    -------
    list of Path
        The WAV files written in this call.

    Raises
    ------
    ValueError
        For ``batch_size < 1`` or a malformed encoding (before anything is generated).
    """
    import soundfile
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    config = generator.config
    out_dir = Path(out_dir)
    jobs = []
    for path, stem in collect_files(inputs, suffixes=(".npy",)):
        encoding, num_samples = load_encoding(path, bottleneck_dims=config.bottleneck_dims,
                                              hop_length_samples=config.hop_length_samples)
        jobs.append(_DecodeJob(path, out_dir / stem.with_name(stem.name + ".wav"), encoding, num_samples))
    _remove_stale_partials(job.out for job in jobs)
    jobs.sort(key=lambda job: job.encoding.shape[0])  # similar lengths share batches (a stable sort)
    batches = [jobs[start: start + batch_size] for start in range(0, len(jobs), batch_size)]
    written = []
    bar = tqdm(total=sum(force or not job.out.exists() for job in jobs), desc="decode", unit="note",
               disable=not progress)
    for index, batch in enumerate(batches):
        missing = [force or not job.out.exists() for job in batch]
        if not any(missing):
            continue
        frames = max(job.encoding.shape[0] for job in batch)
        encodings = np.zeros((len(batch), frames, config.bottleneck_dims), np.float32)
        for row, job in enumerate(batch):
            encodings[row, : job.encoding.shape[0]] = job.encoding
        audio = generator.generate(torch.from_numpy(encodings), seed=seed + index, temperature=temperature,
                                   progress=progress).numpy()
        for row, job in enumerate(batch):
            if not missing[row]:
                continue
            samples = audio[row, : job.num_samples]
            _atomic_write(job.out, lambda f, samples=samples: soundfile.write(
                f, samples, config.sample_rate, format="WAV", subtype="PCM_16"))
            written.append(job.out)
            bar.update(1)
    bar.close()
    return written
