"""Fast batched sample-by-sample generation with the NSynth WaveNet decoder.

Source: Magenta ``magenta/models/nsynth/wavenet/fastgen.py`` and ``h512_bo16.FastGenerationConfig``
("fast generation": every causal layer keeps the inputs it will need again in a queue, so one new
sample costs one matrix-vector product per layer); Paine et al. 2016, "Fast Wavenet Generation
Algorithm". Our own implementation:

- every causal layer keeps a ring buffer of its last ``(K - 1) * dilation`` inputs
  (``nsynth_live.nn.causal_conv.ring_buffer_rows`` gives the rows), so a step is one
  ``(batch, K * C_in) x (K * C_in, C_out)`` matmul per dilated layer plus one fused res+skip matmul;
- the ``cond_map_*`` projections of the encoding are computed once per ``hop_length_samples`` frame
  (and folded with the conv biases);
- on CPU in bfloat16, for batches of up to ``PREPACKED_MAX_BATCH`` voices, every matmul weight is
  pre-packed once into oneDNN's blocked layout (``torch.ops.mkldnn._reorder_linear_weight``, the
  packing PyTorch's Inductor uses for frozen CPU linears) and multiplied with
  ``mkldnn._linear_pointwise``, which adds the bias or the per-frame conditioning in the same call;
  plain ``addmm`` re-lays a weight out on every call. Larger batches use ``addmm``, which was the
  faster of the two there (``benchmarks/wavenet_generation.py`` prints both);
- the time index lives on the device and positions come from a precomputed table, so one step has
  no host synchronisation: on CUDA it is captured once in a CUDA graph and replayed;
- sampling is categorical via the Gumbel-max trick (``argmax(logits + T * gumbel)`` draws from
  ``softmax(logits / T)``), seeded, with optional temperature ``T`` (``T = 0``: greedy); Magenta
  samples plainly (``T = 1``).

The first input is 0 (Magenta ``shift_right``); sample ``t`` is conditioned on frame ``t // hop``;
the output has exactly ``frames * hop_length_samples`` samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from nsynth_live.functional.mu_law import MU_LAW_CODE_MIN, MU_LAW_INPUT_SCALE, mu_law_decode
from nsynth_live.models.wavenet_ae import WaveNetDecoder
from nsynth_live.nn.causal_conv import ring_buffer_rows

_GUMBEL_EPS = 1e-10  # keeps log(-log(u)) finite for u in [0, 1)
# Pre-packed linears for batches up to this many voices; also the rows oneDNN packs the weights for.
# Measured on an Intel Xeon (AMX), bf16, 2 threads, Magenta size: a step took 8.4 / 17.8 / 36.7-41.7 ms
# pre-packed against 15.6 / 25.2 / 43.6-47.2 ms with addmm at batch 1 / 64 / 256, but 81-91 ms
# against 72-73 ms at 512.
PREPACKED_MAX_BATCH = 256
ROW_NOISE_CHUNK_SAMPLES = 128  # steps of per-row noise drawn at once with row_seeds (part of the noise stream's definition)


def cpu_bf16_prepacking_available() -> bool:
    """Whether this PyTorch build and CPU run oneDNN bfloat16 linears on pre-packed weights."""
    mkldnn = torch.ops.mkldnn
    try:
        return (torch.backends.mkldnn.is_available() and hasattr(mkldnn, "_reorder_linear_weight")
                and hasattr(mkldnn, "_linear_pointwise") and bool(mkldnn._is_mkldnn_bf16_supported()))
    except (AttributeError, RuntimeError):
        return False


@dataclass
class WaveNetDecoderState:
    """Generation state of a batch of voices (all tensors on the generator's device).

    Attributes
    ----------
    caches : list of torch.Tensor
        One ring buffer per causal layer, ``((K - 1) * dilation, batch, in_channels)``; index 0 is
        ``startconv`` (1 input channel), then ``dilatedconv_1 ..``.
    time_index : torch.Tensor
        int64 scalar: samples generated so far.
    previous_input : torch.Tensor
        ``(batch, 1)``: mu-law code / 128 of the previous sample (0 before the first).
    conditioning : torch.Tensor
        ``(decoder_layers, batch, 2 * residual_channels)``: ``cond_map_i(frame)`` plus the
        ``dilatedconv_i`` bias, for the current frame.
    output_conditioning : torch.Tensor
        ``(batch, skip_channels)``: ``cond_map_out1(frame)`` plus the ``out1`` bias.
    """

    caches: list[torch.Tensor]
    time_index: torch.Tensor
    previous_input: torch.Tensor
    conditioning: torch.Tensor
    output_conditioning: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.previous_input.shape[0]

    def reset_(self) -> None:
        """Back to the start of a note, in place (tensor storage is kept: CUDA graphs stay valid)."""
        for cache in self.caches:
            cache.zero_()
        self.time_index.zero_()
        self.previous_input.zero_()


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; ``"cpu"`` / ``"cuda"`` as given.

    Raises
    ------
    ValueError
        For another string, or ``"cuda"`` when no CUDA device is available.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but torch sees no CUDA device; use --device cpu or auto")
        return torch.device("cuda")
    raise ValueError(f"device must be one of 'auto', 'cpu', 'cuda', got {device!r}")


def _linear_addmm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x @ weight + bias``; ``weight`` is ``(in, out)``, ``bias`` ``(out,)`` or ``(batch, out)``."""
    return torch.addmm(bias, x, weight)


def pack_linear_weight(weight: torch.Tensor) -> torch.Tensor:
    """An ``(in, out)`` bfloat16 CPU weight in oneDNN's blocked layout, for :func:`linear_prepacked`.

    Packed for ``PREPACKED_MAX_BATCH`` rows (any batch works); needs
    :func:`cpu_bf16_prepacking_available`.
    """
    with torch.inference_mode():
        return torch.ops.mkldnn._reorder_linear_weight(weight.t().contiguous(), PREPACKED_MAX_BATCH)


def linear_prepacked(x: torch.Tensor, packed_weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x @ W + bias`` with ``W`` from :func:`pack_linear_weight`; ``bias`` ``(out,)`` or ``(batch, out)``."""
    if bias.ndim == 1:
        return torch.ops.mkldnn._linear_pointwise(x, packed_weight, bias, "none", [], "")
    return torch.ops.mkldnn._linear_pointwise.binary(x, bias, packed_weight, None, "add")


class WaveNetGenerator:
    """Incremental decoder over a batch of notes.

    Parameters
    ----------
    decoder : WaveNetDecoder
        Trained decoder (its weights are copied, re-laid-out for per-sample matmuls).
    device : str or torch.device
        Where generation runs.
    dtype : torch.dtype
        float32, bfloat16 or float16 (weights, caches and activations; logits and sampling in
        float32).
    use_cuda_graph : bool
        On CUDA, capture one step (network + sampling + feedback) in a CUDA graph and replay it.
        Ignored on CPU.
    prepack : bool or None
        For batches of up to ``PREPACKED_MAX_BATCH`` voices, multiply with weights pre-packed for
        oneDNN (CPU, bfloat16 only; the plain weights are kept for larger batches). ``None``:
        wherever :func:`cpu_bf16_prepacking_available` says so. The ``prepacked`` attribute tells
        which was chosen, :meth:`uses_prepacked` whether a batch size uses it.

    Raises
    ------
    ValueError
        For an unsupported dtype, or ``prepack=True`` off CPU bfloat16 or where oneDNN cannot.
    """

    def __init__(self, decoder: WaveNetDecoder, *, device="cpu", dtype: torch.dtype = torch.float32,
                 use_cuda_graph: bool = True, prepack: bool | None = None):
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype}")
        self.config = decoder.config
        self.device = resolve_device(device)
        self.dtype = dtype
        self.use_cuda_graph = use_cuda_graph
        can_prepack = self.device.type == "cpu" and dtype == torch.bfloat16 and cpu_bf16_prepacking_available()
        if prepack and not can_prepack:
            raise ValueError("prepack=True needs CPU, bfloat16 and a PyTorch/CPU with oneDNN bfloat16 linears; "
                             f"got device {self.device}, dtype {dtype}")
        self.prepacked = can_prepack if prepack is None else bool(prepack)
        cfg = self.config
        k = cfg.decoder_kernel_size
        layers = decoder.layers

        def prep(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(device=self.device, dtype=dtype).contiguous()

        def taps_matrix(weight: torch.Tensor) -> torch.Tensor:
            # (out, in, K) -> (K * in, out), rows ordered oldest tap first, like the cat of inputs
            return weight.permute(2, 1, 0).reshape(-1, weight.shape[0])

        def one_by_one(name: str) -> torch.Tensor:
            return layers[name].weight[:, :, 0].t()

        n = cfg.decoder_layers
        # The matmul weights a step multiplies with, (in, out), by name; biases and conditioning apart.
        self._plain_weights = {
            "start": prep(taps_matrix(layers["startconv"].weight)),
            "skip_start": prep(one_by_one("skip_start")),
            "dilated": [prep(taps_matrix(layers[f"dilatedconv_{i}"].weight)) for i in range(1, n + 1)],
            "res_skip": [  # (R, R + S)
                prep(torch.cat([one_by_one(f"res_{i}"), one_by_one(f"skip_{i}")], dim=1)) for i in range(1, n + 1)
            ],
            "out1": prep(one_by_one("out1")),
            "logits": prep(one_by_one("logits")),
        }
        self._start_b = prep(layers["startconv"].bias)
        self._skip_start_b = prep(layers["skip_start"].bias)
        self._cond_w = prep(torch.stack([one_by_one(f"cond_map_{i}") for i in range(1, n + 1)]))  # (L, Z, 2R)
        self._cond_b = prep(torch.stack([
            layers[f"cond_map_{i}"].bias + layers[f"dilatedconv_{i}"].bias for i in range(1, n + 1)
        ]).unsqueeze(1))  # (L, 1, 2R)
        self._res_skip_b = [
            prep(torch.cat([layers[f"res_{i}"].bias, layers[f"skip_{i}"].bias])) for i in range(1, n + 1)
        ]
        self._out_cond_w = prep(one_by_one("cond_map_out1"))
        self._out_cond_b = prep(layers["cond_map_out1"].bias + layers["out1"].bias)
        self._logits_b = prep(layers["logits"].bias)
        # The same weights pre-packed for oneDNN, once (addmm re-lays a weight out on every call).
        self._packed_weights = {}
        if self.prepacked:
            self._packed_weights = {
                name: [pack_linear_weight(w) for w in value] if isinstance(value, list) else pack_linear_weight(value)
                for name, value in self._plain_weights.items()
            }

        # Cache rows of every causal layer for t mod period (all (K-1) d divide (K-1) max(d)).
        self._dilations = (1,) + cfg.decoder_dilations
        self._period = (k - 1) * max(self._dilations)
        t = torch.arange(self._period, dtype=torch.int64)
        self._row_table = torch.cat(
            [ring_buffer_rows(t, dilation=d, kernel_size=k) for d in self._dilations], dim=1
        ).to(self.device)  # (period, layers * (K - 1))

    def uses_prepacked(self, batch_size: int) -> bool:
        """Whether a step over ``batch_size`` voices multiplies with the pre-packed weights."""
        return self.prepacked and batch_size <= PREPACKED_MAX_BATCH

    # ------------------------------------------------------------------ state
    def new_state(self, batch_size: int) -> WaveNetDecoderState:
        """Zeroed state for ``batch_size`` voices at the start of a note."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        cfg, k = self.config, self.config.decoder_kernel_size
        kw = dict(device=self.device, dtype=self.dtype)
        caches = [torch.zeros((k - 1) * 1, batch_size, 1, **kw)]
        caches += [torch.zeros((k - 1) * d, batch_size, cfg.residual_channels, **kw) for d in cfg.decoder_dilations]
        return WaveNetDecoderState(
            caches=caches,
            time_index=torch.zeros((), dtype=torch.int64, device=self.device),
            previous_input=torch.zeros(batch_size, 1, **kw),
            conditioning=torch.zeros(cfg.decoder_layers, batch_size, 2 * cfg.residual_channels, **kw),
            output_conditioning=torch.zeros(batch_size, cfg.skip_channels, **kw),
        )

    def set_frame_encoding(self, state: WaveNetDecoderState, frame_encoding: torch.Tensor) -> None:
        """Project one frame of encodings for every layer (once per hop), in place.

        Parameters
        ----------
        frame_encoding : torch.Tensor, shape (batch, bottleneck_dims)
        """
        en = frame_encoding.to(device=self.device, dtype=self.dtype)
        layers = self.config.decoder_layers
        state.conditioning.copy_(torch.baddbmm(self._cond_b, en.unsqueeze(0).expand(layers, -1, -1), self._cond_w))
        state.output_conditioning.copy_(torch.addmm(self._out_cond_b, en, self._out_cond_w))

    # ------------------------------------------------------------------ one step
    def step(self, state: WaveNetDecoderState) -> torch.Tensor:
        """Logits of the next sample given ``state.previous_input``; advances the state by one sample.

        Returns
        -------
        torch.Tensor, float32, shape (batch, 256)
        """
        k = self.config.decoder_kernel_size
        r = self.config.residual_channels
        batch = state.batch_size
        if self.uses_prepacked(batch):
            linear, weights = linear_prepacked, self._packed_weights
        else:
            linear, weights = _linear_addmm, self._plain_weights
        rows = self._row_table.index_select(0, state.time_index.remainder(self._period).reshape(1))[0]

        def causal(layer: int, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            cache = state.caches[layer]
            layer_rows = rows[(k - 1) * layer: (k - 1) * (layer + 1)]
            past = cache.index_select(0, layer_rows)  # (K - 1, batch, C), oldest first
            taps = torch.cat([past.transpose(0, 1).reshape(batch, -1), x], dim=1)  # (batch, K * C)
            cache.index_copy_(0, layer_rows[:1], x.unsqueeze(0))
            return linear(taps, weight, bias)

        l = causal(0, state.previous_input, weights["start"], self._start_b)
        s = linear(l, weights["skip_start"], self._skip_start_b)
        for i in range(self.config.decoder_layers):
            d = causal(i + 1, l, weights["dilated"][i], state.conditioning[i])
            z = torch.sigmoid(d[:, :r]) * torch.tanh(d[:, r:])
            rs = linear(z, weights["res_skip"][i], self._res_skip_b[i])
            l = l + rs[:, :r]
            s = s + rs[:, r:]
        s = linear(F.relu(s), weights["out1"], state.output_conditioning)
        logits = linear(F.relu(s), weights["logits"], self._logits_b)
        state.time_index.add_(1)
        return logits.float()

    def _sample_step(self, state: WaveNetDecoderState, uniform: torch.Tensor, temperature: float) -> torch.Tensor:
        """One step + Gumbel-max sampling + feedback; returns the signed codes ``(batch,)`` int64."""
        logits = self.step(state)
        if temperature > 0:
            gumbel = -torch.log(-torch.log(uniform.clamp(_GUMBEL_EPS, 1.0 - _GUMBEL_EPS)))
            logits = logits + temperature * gumbel
        codes = torch.argmax(logits, dim=-1) + MU_LAW_CODE_MIN
        state.previous_input.copy_((codes.to(self.dtype) / MU_LAW_INPUT_SCALE).unsqueeze(1))
        return codes

    # ------------------------------------------------------------------ whole notes
    def _check_encodings(self, encodings: torch.Tensor) -> torch.Tensor:
        encodings = torch.as_tensor(encodings)
        dims = self.config.bottleneck_dims
        if encodings.ndim != 3 or encodings.shape[2] != dims or encodings.shape[1] < 1:
            raise ValueError(
                f"encodings must have shape (batch, frames >= 1, {dims}), got {tuple(encodings.shape)}; "
                "a single note's [frames, dims] array needs a leading batch axis"
            )
        if not bool(torch.isfinite(encodings).all()):
            raise ValueError("encodings contain NaN or infinity")
        return encodings.to(device=self.device, dtype=self.dtype)

    def teacher_forced_logits(self, x_scaled: torch.Tensor, encodings: torch.Tensor) -> torch.Tensor:
        """Logits of every sample when the true previous samples are fed (parity with the full forward).

        Parameters
        ----------
        x_scaled : torch.Tensor, shape (batch, frames * hop)
            Mu-law code / 128 of the audio.
        encodings : torch.Tensor, shape (batch, frames, bottleneck_dims)

        Returns
        -------
        torch.Tensor, float32, shape (batch, 256, frames * hop)
        """
        encodings = self._check_encodings(encodings)
        hop = self.config.hop_length_samples
        time = encodings.shape[1] * hop
        if tuple(x_scaled.shape) != (encodings.shape[0], time):
            raise ValueError(f"x_scaled must have shape {(encodings.shape[0], time)}, got {tuple(x_scaled.shape)}")
        x_scaled = x_scaled.to(device=self.device, dtype=self.dtype)
        with torch.inference_mode():
            state = self.new_state(encodings.shape[0])
            out = []
            for t in range(time):
                if t % hop == 0:
                    self.set_frame_encoding(state, encodings[:, t // hop])
                if t > 0:
                    state.previous_input.copy_(x_scaled[:, t - 1: t])
                out.append(self.step(state))
            return torch.stack(out, dim=-1)

    def generate_codes(self, encodings: torch.Tensor, *, seed: int = 0, temperature: float = 1.0,
                       progress: bool = False, row_seeds=None, max_samples: int | None = None) -> torch.Tensor:
        """Sample mu-law codes for a batch of notes.

        Parameters
        ----------
        encodings : torch.Tensor or numpy.ndarray, shape (batch, frames, bottleneck_dims)
        seed : int
            Seed of the sampling noise: same seed and inputs give the same codes.
        temperature : float
            ``>= 0``; 1 samples the model's distribution, 0 takes the most likely class.
        progress : bool
            Show a tqdm bar over samples.
        row_seeds : sequence of int, optional
            One seed per row: row ``r``'s noise is drawn ``ROW_NOISE_CHUNK_SAMPLES`` steps at a time
            from its own generator seeded ``row_seeds[r]``, so a note's codes do not depend on the
            other notes of the batch or its row (``seed`` is then unused). Default: one generator
            seeded ``seed`` for the whole batch.
        max_samples : int, optional
            Stop after this many samples (default: every frame's, ``frames * hop_length_samples``).

        Returns
        -------
        torch.Tensor, int64, shape (batch, time), on the generator's device
            Signed codes in ``[-128, 127]``; ``time`` is ``frames * hop_length_samples`` or
            ``max_samples``.

        Raises
        ------
        ValueError
            For a bad encoding shape, non-finite values or a negative temperature.
        """
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        encodings = self._check_encodings(encodings)
        batch, frames = encodings.shape[:2]
        hop = self.config.hop_length_samples
        time = frames * hop
        if max_samples is not None:
            if not 1 <= max_samples <= time:
                raise ValueError(f"max_samples must be in 1..{time} (the encodings' samples), got {max_samples}")
            time = int(max_samples)
        if row_seeds is not None and len(row_seeds) != batch:
            raise ValueError(f"row_seeds needs one seed per row: {len(row_seeds)} seeds for {batch} rows")
        classes = self.config.quantization_channels
        with torch.inference_mode():
            state = self.new_state(batch)
            generator = torch.Generator(device=self.device).manual_seed(int(seed))
            row_generators = ([torch.Generator(device=self.device).manual_seed(int(s)) for s in row_seeds]
                              if row_seeds is not None else None)
            row_noise = (torch.empty(batch, ROW_NOISE_CHUNK_SAMPLES, classes, device=self.device)
                         if row_seeds is not None else None)  # (batch, steps, classes)
            uniform = torch.zeros(batch, classes, device=self.device)
            codes = torch.empty(batch, time, dtype=torch.int64, device=self.device)
            step = self._make_step(state, uniform, float(temperature), encodings[:, 0])
            iterator = range(time)
            if progress:
                from tqdm.auto import tqdm

                iterator = tqdm(iterator, desc="wavenet samples", unit="sample", unit_scale=batch, leave=False)
            for t in iterator:
                if t % hop == 0:
                    self.set_frame_encoding(state, encodings[:, t // hop])
                if row_generators is None:
                    torch.rand(uniform.shape, generator=generator, device=self.device, out=uniform)
                else:
                    if t % ROW_NOISE_CHUNK_SAMPLES == 0:
                        for row, row_generator in enumerate(row_generators):
                            torch.rand(row_noise.shape[1:], generator=row_generator, device=self.device,
                                       out=row_noise[row])
                    uniform.copy_(row_noise[:, t % ROW_NOISE_CHUNK_SAMPLES])
                codes[:, t] = step()
            return codes

    def generate(self, encodings: torch.Tensor, *, seed: int = 0, temperature: float = 1.0,
                 progress: bool = False) -> torch.Tensor:
        """Audio of a batch of notes: :meth:`generate_codes` decoded through the inverse mu-law.

        Returns
        -------
        torch.Tensor, float32, shape (batch, frames * hop_length_samples), on CPU, in (-1, 1)
        """
        codes = self.generate_codes(encodings, seed=seed, temperature=temperature, progress=progress)
        return mu_law_decode(codes.cpu())

    def _make_step(self, state, uniform, temperature, first_frame):
        """A no-argument callable that advances ``state`` by one sampled step (CUDA graph on CUDA)."""
        if not (self.device.type == "cuda" and self.use_cuda_graph):
            return lambda: self._sample_step(state, uniform, temperature)
        # Warm up on a side stream (lazy inits happen outside capture), rewind, capture, replay.
        self.set_frame_encoding(state, first_frame)
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self._sample_step(state, uniform, temperature)
        torch.cuda.current_stream(self.device).wait_stream(side)
        state.reset_()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_codes = self._sample_step(state, uniform, temperature)

        def replay() -> torch.Tensor:
            graph.replay()
            return static_codes

        return replay
