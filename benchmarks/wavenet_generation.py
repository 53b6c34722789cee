"""Speed of batched WaveNet generation with the Magenta-size (h512_bo16) decoder.

Prints, per device / dtype / batch: milliseconds per step, samples per second, seconds of 16 kHz
audio per second of compute, and achieved FLOP/s (on GPU also the fraction of the GPU's peak). Each
row also measures one matmul of a dilated layer's step shape (batch x 1536 x 1024 for h512_bo16) on its
own: "ceiling s/s" is the audio seconds per second that rate would give if the whole step ran at it,
the most this machine can reach for the row without fewer FLOPs (another model or lower precision).
One step = drawing the sampling noise + the full decoder for one sample of every voice + Gumbel-max
sampling + feedback + storing the codes, as in ``WaveNetGenerator.generate_codes`` (CUDA graph on
GPU), plus 1/512 of a frame's conditioning projections. Weights are random: speed does not depend
on them.

Usage::

    python benchmarks/wavenet_generation.py                       # CPU: fp32, bf16 (addmm, pre-packed), batch 1, 64, 256
    python benchmarks/wavenet_generation.py --device cuda         # GPU: bf16/fp16, batch doubling until out of memory
    python benchmarks/wavenet_generation.py --threads 1 --steps 24
"""

from __future__ import annotations

import argparse
import time

import torch

from nsynth_live.models.wavenet_ae import WaveNetAutoencoder
from nsynth_live.runtime.wavenet_generate import (
    WaveNetGenerator,
    cpu_bf16_prepacking_available,
    linear_prepacked,
    pack_linear_weight,
    resolve_device,
)

# Dense peak tensor throughput, FLOP/s, from the vendors' datasheets (bf16 = fp16, no sparsity); the
# first name found in the device's name wins, so the PCIe and NVL H100s come before the SXM one.
PEAK_FLOPS = {"H100 PCIe": 756e12, "H100 NVL": 835e12, "H100": 989e12, "H200": 989e12, "A100": 312e12,
              "L4": 121e12, "A10": 125e12}
GPU_BATCH_LIMIT = 1 << 20  # doubling stops here if memory never runs out


def decoder_flops_per_sample(config) -> float:
    """2 x multiply-accumulates of one generation step per voice (conditioning is per frame: excluded)."""
    r, s, k = config.residual_channels, config.skip_channels, config.decoder_kernel_size
    macs = k * r + r * s  # startconv, skip_start
    macs += config.decoder_layers * (k * r * 2 * r + r * (r + s))  # dilated conv, res + skip
    macs += s * s + s * config.quantization_channels  # out1, logits
    return 2.0 * macs


def seconds_per_call(fn, *, repeats: int, warmup: int, device: torch.device) -> float:
    """Mean wall seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls (CUDA synchronised)."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def time_steps(generator: WaveNetGenerator, batch_size: int, steps: int, warmup: int) -> float:
    """Seconds per generated sample, as ``generate_codes`` spends them, averaged over ``steps``.

    A step's work: drawing the sampling noise, the step itself (network, sampling and feedback; one
    CUDA graph replay on GPU) and storing the codes; plus ``1 / hop_length_samples`` of a frame's
    conditioning projections.
    """
    device = generator.device
    with torch.inference_mode():
        state = generator.new_state(batch_size)
        encoding = torch.randn(batch_size, generator.config.bottleneck_dims, device=device)
        uniform = torch.rand(batch_size, generator.config.quantization_channels, device=device)
        step = generator._make_step(state, uniform, 1.0, encoding)
        generator.set_frame_encoding(state, encoding)
        noise = torch.Generator(device=device).manual_seed(0)
        codes = torch.empty(batch_size, dtype=torch.int64, device=device)

        def one_sample() -> None:
            torch.rand(uniform.shape, generator=noise, device=device, out=uniform)
            codes.copy_(step())

        per_sample = seconds_per_call(one_sample, repeats=steps, warmup=warmup, device=device)
        per_frame = seconds_per_call(lambda: generator.set_frame_encoding(state, encoding), repeats=3, warmup=1,
                                     device=device)
        return per_sample + per_frame / generator.config.hop_length_samples


def gemm_flops_per_second(batch_size: int, in_features: int, out_features: int, dtype: torch.dtype,
                          device: torch.device, repeats: int = 20, prepacked: bool = False) -> float:
    """Measured FLOP/s of one ``(batch, in) x (in, out)`` matmul, the shape of a dilated layer's step.

    The decoder step is 30 such products plus smaller ones, so ``this rate / FLOP per sample`` is
    the most a step can reach on this machine: the row's ceiling. ``prepacked``: the weight is
    packed for oneDNN once, as ``WaveNetGenerator`` does for the batch sizes it pre-packs.
    """
    a = torch.randn(batch_size, in_features, dtype=dtype, device=device)
    b = torch.randn(in_features, out_features, dtype=dtype, device=device)
    if prepacked:
        packed = pack_linear_weight(b)
        bias = torch.zeros(out_features, dtype=dtype, device=device)

        def product():
            return linear_prepacked(a, packed, bias)
    else:
        def product():
            return a @ b
    with torch.inference_mode():
        seconds = seconds_per_call(product, repeats=repeats, warmup=3, device=device)
    return 2.0 * batch_size * in_features * out_features / seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="WaveNet generation speed (Magenta-size decoder)")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per row (default 24 CPU, 200 GPU)")
    parser.add_argument("--batches", default=None,
                        help="comma-separated batch sizes (default CPU 1,64,256; GPU 1,64,256, then doubling "
                             "until out of memory)")
    parser.add_argument("--dtypes", default=None,
                        help="comma-separated (default CPU float32,bfloat16,bf16-pack; GPU bfloat16,float16); "
                             "bf16-pack: bfloat16 with oneDNN pre-packed weights, bfloat16: plain addmm")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = device.type == "cuda"
    steps = args.steps or (200 if gpu else 24)
    if args.batches:
        batches = [int(b) for b in args.batches.split(",")]
    else:
        batches = [1, 64, 256] + ([256 << i for i in range(1, 13) if 256 << i <= GPU_BATCH_LIMIT] if gpu else [])
    if gpu:
        default_dtypes = "bfloat16,float16"
    else:
        default_dtypes = "float32,bfloat16" + (",bf16-pack" if cpu_bf16_prepacking_available() else "")
    dtypes = (args.dtypes or default_dtypes).split(",")

    model = WaveNetAutoencoder.from_name("magenta").eval()
    config = model.config
    flops_per_sample = decoder_flops_per_sample(config)
    peak = None
    if gpu:
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in PEAK_FLOPS.items() if k in name), None)
        where = f"{name}, peak {peak / 1e12:.0f} TFLOP/s" if peak else name
    else:
        where = f"CPU, {torch.get_num_threads()} threads"
    print(f"# WaveNet generation, Magenta h512_bo16 decoder, {where}")
    print(f"# {flops_per_sample / 1e6:.1f} MFLOP per sample per voice (2 x MACs), {steps} timed steps per row")
    header = (f"{'device':6} {'dtype':9} {'batch':>6} {'ms/step':>9} {'samples/s':>11} {'audio s/s':>10} {'TFLOP/s':>8}"
              f" {'GEMM TFLOP/s':>12} {'ceiling s/s':>11}")
    print(header + ("  % peak" if peak else ""))
    taps_in = config.decoder_kernel_size * config.residual_channels
    for dtype_name in dtypes:
        prepack = dtype_name == "bf16-pack"
        dtype = torch.bfloat16 if prepack else getattr(torch, dtype_name)
        generator = WaveNetGenerator(model.decoder, device=device, dtype=dtype, prepack=prepack)
        for batch in batches:
            try:
                seconds = time_steps(generator, batch, steps, warmup=3 if not gpu else 10)
            except torch.OutOfMemoryError:
                print(f"{device.type:6} {dtype_name:9} {batch:>6}  out of memory: largest batch is the row above")
                torch.cuda.empty_cache()
                break
            samples_per_second = batch / seconds
            achieved = samples_per_second * flops_per_sample
            gemm = gemm_flops_per_second(batch, taps_in, 2 * config.residual_channels, generator.dtype, device,
                                         prepacked=generator.uses_prepacked(batch))
            ceiling = gemm / flops_per_sample / config.sample_rate
            line = (f"{device.type:6} {dtype_name:9} {batch:>6} {seconds * 1e3:>9.2f} {samples_per_second:>11.0f} "
                    f"{samples_per_second / config.sample_rate:>10.3f} {achieved / 1e12:>8.3f}"
                    f" {gemm / 1e12:>12.3f} {ceiling:>11.3f}")
            if peak:
                line += f"  {100 * achieved / peak:6.1f}"
            print(line, flush=True)
        del generator
        if gpu:
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
