"""Speed of rendering a timbre-grid bank: notes per second and seconds of audio per second, per backend.

``sing`` renders a whole bank through :func:`nsynth_live.render.bank.render_bank` (the model, the
finishing of each note: 16 -> 48 kHz, sustain loop, 24-bit WAV, manifest; then the SFZ, pictures and
``bank.json``) into a temporary folder and prints the wall time of each part. The issue's target: a
9 x 9 grid x 13 roots x 1 velocity layer (1,053 notes) in at most 2 minutes on the 2-core CPU.

``wavenet`` builds the Magenta-size autoencoder (h512_bo16, random weights: speed does not depend on
them) and four synthetic corner notes, then either projects the time of a bank from timed generator
steps (``--notes 0``, the default on CPU: a 4-s note costs 64,000 sequential steps) or renders
``--notes`` whole notes and times them (on a GPU). Target: >= 100 s of audio per second on one H100.

Usage::

    python benchmarks/bank_render.py                               # sing, the default 9 x 9 x 13 bank
    python benchmarks/bank_render.py --workers 2 --batch-size 128
    python benchmarks/bank_render.py --backend wavenet             # CPU projection (bf16)
    python benchmarks/bank_render.py --player out/banks/default    # the live bank player's step time
    python benchmarks/bank_render.py --backend wavenet --device cuda --precision float16 --batch-size 2048 --notes 2048
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BANK_NOTES = 9 * 9 * 13  # the reference bank


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bench_sing(args) -> None:
    from nsynth_live.presets import load_preset
    from nsynth_live.render.bank import BankSettings, render_bank
    from nsynth_live.render.sources import SourceSpec

    pitches = tuple(range(36, 85, 4))[: args.pitches]
    settings = BankSettings(name="bench", grid_size=args.grid, pitches=pitches, formats=("sfz", "decent"),
                            plots=not args.no_plots)
    source = SourceSpec(backend="sing", model_path=str(REPO_ROOT / "models" / "sing_default.onnx"),
                        corners=load_preset("default").corners, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = render_bank(Path(folder) / "bank", settings=settings, source=source, workers=args.workers,
                             progress=False, announce=lambda line: print(f"# {line}"))
        total = time.perf_counter() - started
    print(f"# sing bank, {args.grid}x{args.grid} grid x {len(pitches)} roots x 1 layer, {_cpu_name()}, "
          f"{args.workers} worker(s), batch {args.batch_size}")
    print(f"{'notes':>6} {'render s':>9} {'notes/s':>8} {'audio s/s':>10} {'total s':>8}")
    print(f"{result.notes_rendered:>6} {result.seconds:>9.1f} {result.notes_per_second:>8.2f} "
          f"{result.audio_seconds / result.seconds:>10.1f} {total:>8.1f}")
    print(f"# 'total' adds the model load, the SFZ and Decent Sampler files{'' if args.no_plots else ', the pictures'} "
          "and bank.json to the rendering of the notes")


def bench_wavenet(args) -> None:
    import soundfile
    import torch

    from nsynth_live.models.wavenet_ae import WaveNetAutoencoder
    from nsynth_live.render.sources import SourceSpec
    from nsynth_live.render.wavenet_source import WavenetNoteRenderer
    from nsynth_live.runtime.wavenet_generate import resolve_device

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = WaveNetAutoencoder.from_name("magenta").eval()
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = str(model.save(Path(folder) / "magenta_random.pt"))
        corners = []
        t = np.arange(16_000) / 16_000
        for k, f0 in enumerate((220.0, 277.18, 329.63, 440.0)):
            path = Path(folder) / f"corner{k}.wav"
            soundfile.write(path, (0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(4 * np.pi * f0 * t)), 16_000)
            corners.append(str(path))
        spec = SourceSpec(backend="wavenet", model_path=checkpoint, corners=tuple(corners), device=str(device),
                          precision=args.precision, batch_size=args.batch_size)
        renderer = WavenetNoteRenderer(spec)
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{_cpu_name()}, {torch.get_num_threads()} threads"
        print(f"# wavenet (Magenta h512_bo16), {args.precision}, batch {args.batch_size}, {where}")
        note_seconds = renderer.note_samples / renderer.sample_rate
        projected = renderer.estimate_seconds(args.batch_size)
        print(f"projected from timed steps: {args.batch_size * note_seconds / projected:.3f} s of audio per second; "
              f"a {DEFAULT_BANK_NOTES}-note bank would take {renderer.estimate_seconds(DEFAULT_BANK_NOTES) / 3600:.2f} h")
        if args.notes:
            weights = np.tile([0.25, 0.25, 0.25, 0.25], (args.notes, 1))
            pitches = np.array([48 + (k % 24) for k in range(args.notes)])
            velocities = np.full(args.notes, 100)
            renderer.cell_embeddings(weights[:1], pitches[:1], velocities[:1])  # encode outside the timing
            started = time.perf_counter()
            audio = renderer.render(weights, pitches, velocities)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - started
            print(f"rendered {args.notes} notes of {note_seconds:.1f} s in {seconds:.1f} s: "
                  f"{args.notes / seconds:.2f} notes/s, {args.notes * note_seconds / seconds:.1f} s of audio per second "
                  f"(peak {np.abs(audio).max():.2f})")


def bench_player(args) -> None:
    """Milliseconds of one bank-player step (a 16-ms hop) for 1, 16 and 64 voices at random keys and XY."""
    from nsynth_live.runtime.bank_player import BankPlayer

    player = BankPlayer(args.player)
    rng = np.random.default_rng(0)
    hop_ms = 1000 * player.spec.hop_length_samples / player.spec.sample_rate
    print(f"# bank player, {args.player} ({player.memory_bytes / 2**20:.0f} MiB), {_cpu_name()}, one thread")
    print(f"{'voices':>6} {'ms/step':>8} {'% of hop':>9}")
    for voices in (1, 16, 64):
        state = player.new_state(voices)
        xy = rng.uniform(0, 1, (voices, 2)).astype(np.float32)
        pitch, velocity = rng.integers(36, 90, voices), np.full(voices, 100.0)
        for t in range(5):
            _, state = player.step(xy, pitch, velocity, np.full(voices, t), state)
        started = time.perf_counter()
        for t in range(100):
            _, state = player.step(xy, pitch, velocity, np.full(voices, 100 + t), state)
        ms = (time.perf_counter() - started) * 10
        print(f"{voices:>6} {ms:>8.2f} {100 * ms / hop_ms:>8.0f}%")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sing", "wavenet"), default="sing")
    parser.add_argument("--grid", type=int, default=9, help="sing: N x N grid (default 9)")
    parser.add_argument("--pitches", type=int, default=13, help="sing: roots from 36:84:4 (default 13)")
    parser.add_argument("--workers", type=int, default=1, help="sing: local worker processes (default 1)")
    parser.add_argument("--no-plots", action="store_true", help="sing: skip the pictures")
    parser.add_argument("--batch-size", type=int, default=None, help="notes per model call (sing 128, wavenet 256)")
    parser.add_argument("--device", default="cpu", help="wavenet: cpu, cuda or auto")
    parser.add_argument("--precision", default=None, choices=("float32", "bfloat16", "float16"),
                        help="wavenet (default: bfloat16 on CPU, float16 on CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="wavenet: torch CPU threads")
    parser.add_argument("--notes", type=int, default=0, help="wavenet: whole notes rendered and timed (0: project)")
    parser.add_argument("--player", metavar="BANK_DIR", help="time the live bank player's step on a rendered bank instead")
    args = parser.parse_args(argv)
    if args.player:
        bench_player(args)
    elif args.backend == "sing":
        args.batch_size = args.batch_size or 128
        bench_sing(args)
    else:
        args.batch_size = args.batch_size or 256
        args.precision = args.precision or ("float16" if args.device.startswith("cuda") else "bfloat16")
        bench_wavenet(args)


if __name__ == "__main__":
    main()
