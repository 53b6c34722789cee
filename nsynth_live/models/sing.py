"""SING: Symbol-to-Instrument Neural Generator (Defossez et al. 2018), in PyTorch.

Training modules (``SingEncoder``, ``SingDecoder``, ``SequenceGenerator``, ``Sing``) generate a
whole note; ``SingStreamingStep`` generates one 256-sample hop for a batch of voices with explicit
state (LSTM h/c, the decoder conv's embedding context, the overlap-add tail) and is what the ONNX
export runs. Both share weights and give the same audio (see tests/models/test_sing.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from nsynth_live.models.sing_configs import SingConfig
from nsynth_live.nn.windowed import WindowedConv1d, WindowedConvTranspose1d


def _he_init(conv: nn.Module, *, fan_in: float, gain: float = 2.0) -> None:
    """Normal init with variance ``gain / fan_in`` and zero bias (He et al. 2015).

    PyTorch's default init shrinks the signal ~3x per layer; through SING's seven layers a note
    then reaches the output at ~1e-5, where the log(1 + |STFT|^2) loss has no gradient and the
    autoencoder stays silent (measured on our SoundFont data). He init keeps the scale.
    """
    nn.init.normal_(conv.weight, 0.0, math.sqrt(gain / fan_in))
    nn.init.zeros_(conv.bias)


def pad_note(audio: torch.Tensor, config: SingConfig) -> torch.Tensor:
    """Pad notes with ``pad_samples`` zeros on each side: ``(batch, 64000)`` -> ``(batch, 68608)``."""
    return F.pad(audio, (config.pad_samples, config.pad_samples))


def decoder_target(audio: torch.Tensor, config: SingConfig) -> torch.Tensor:
    """The part of a note the decoder output is compared with: ``(batch, 64000)`` -> ``(batch, 65024)``.

    The decoder output covers the note plus ``output_trim_samples`` (512) on each side.
    """
    trim = config.output_trim_samples
    return F.pad(audio, (trim, trim))


def crop_frames(padded: torch.Tensor, start_frames: torch.Tensor, frames: int, config: SingConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of padded notes for training on ``frames`` embedding frames at a time.

    SING's encoder and decoder are convolutional, so they can be trained on crops (the LSTM, which
    is not, always runs over whole notes). Frame ``j`` of a note sees padded samples
    ``[256 j, 256 j + 1024)``; the decoder fed frames ``j0 .. j0 + frames - 1`` outputs padded samples
    ``[256 j0 + 1792, 256 j0 + 1792 + 256 frames - 2816)``.

    Parameters
    ----------
    padded : (batch, padded_samples) float
    start_frames : (batch,) int64, first frame of each crop (``0 .. time_steps - frames``)

    Returns
    -------
    encoder_input : (batch, 256 (frames - 1) + 1024)
    decoder_target : (batch, 256 frames - 2816)
    """
    hop, window = config.hop_length_samples, config.window_length_samples
    offsets = start_frames[:, None] * hop
    encoder_input = padded.gather(1, offsets + torch.arange(hop * (frames - 1) + window, device=padded.device))
    lead = window + config.decoder_padding_samples  # 1792
    length = hop * (frames - config.decoder_kernel_frames) + window - 2 * config.decoder_padding_samples
    target = padded.gather(1, offsets + lead + torch.arange(length, device=padded.device))
    return encoder_input, target


class SingEncoder(nn.Module):
    """Waveform -> embeddings (SING section 3.1). Used only to pre-train the decoder.

    Input ``(batch, padded_samples)`` float; output ``(batch, time_steps, embedding_dims)``.
    """

    def __init__(self, config: SingConfig):
        super().__init__()
        c = config.conv_channels
        self.conv = WindowedConv1d(1, c, config.window_length_samples, stride=config.hop_length_samples)
        self.hidden = nn.Sequential(nn.ReLU(), nn.Conv1d(c, c, 1), nn.ReLU(), nn.Conv1d(c, c, 1), nn.ReLU())
        self.project = nn.Conv1d(c, config.embedding_dims, 1)
        # The windowed kernel's energy is sum(hann^4) = 0.273 x window length.
        _he_init(self.conv, fan_in=0.273 * config.window_length_samples)
        for layer in [m for m in self.hidden if isinstance(m, nn.Conv1d)] + [self.project]:
            _he_init(layer, fan_in=layer.in_channels)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.project(self.hidden(self.conv(audio[:, None, :]))).transpose(1, 2)


class SingDecoder(nn.Module):
    """Embeddings -> waveform (SING section 3.1).

    Conv1d(D -> C, kernel 9) + ReLU, two 1x1 C -> C + ReLU, windowed ConvTranspose1d(C -> 1, 1024,
    stride 256, padding 768). Input ``(batch, frames, embedding_dims)``; output ``(batch, time)``
    with 265 frames -> 65024 samples.
    """

    def __init__(self, config: SingConfig):
        super().__init__()
        c = config.conv_channels
        self.config = config
        self.conv = nn.Conv1d(config.embedding_dims, c, config.decoder_kernel_frames)
        self.hidden = nn.Sequential(nn.ReLU(), nn.Conv1d(c, c, 1), nn.ReLU(), nn.Conv1d(c, c, 1), nn.ReLU())
        self.synthesis = WindowedConvTranspose1d(
            c, 1, config.window_length_samples, stride=config.hop_length_samples,
            padding=config.decoder_padding_samples,
        )
        _he_init(self.conv, fan_in=config.embedding_dims * config.decoder_kernel_frames)
        for layer in [m for m in self.hidden if isinstance(m, nn.Conv1d)]:
            _he_init(layer, fan_in=layer.in_channels)
        _he_init(self.synthesis, fan_in=c, gain=1.0)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.synthesis(self.hidden(self.conv(embeddings.transpose(1, 2))))[:, 0, :]


class VelocityTable(nn.Module):
    """Velocity lookup table with linear interpolation between its rows.

    Row i belongs to MIDI velocity ``velocities[i]`` (NSynth's 25, 50, 75, 100, 127); a velocity in
    between blends the two neighbouring rows, one outside the range takes the nearest row. At the
    table's velocities this is exactly SING's lookup table.
    """

    def __init__(self, velocities: tuple[int, ...], dims: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(len(velocities), dims))
        self.register_buffer("knots", torch.tensor(velocities, dtype=torch.float32), persistent=False)

    def forward(self, velocity: torch.Tensor) -> torch.Tensor:
        """``velocity`` ``(batch,)`` float MIDI velocity -> ``(batch, dims)``."""
        k = self.knots
        v = velocity.to(torch.float32).clamp(k[0], k[-1])[:, None]
        prev_k = torch.cat([k[:1] - 1.0, k[:-1]])
        next_k = torch.cat([k[1:], k[-1:] + 1.0])
        rising = (v - prev_k) / (k - prev_k)
        falling = (next_k - v) / (next_k - k)
        hat = torch.minimum(rising, falling).clamp(0.0, 1.0)  # (batch, rows), rows sum to 1
        return hat @ self.weight


class SequenceGenerator(nn.Module):
    """Note parameters -> embedding sequence (SING section 3.2).

    Lookup tables for instrument (16), pitch (8), velocity (2) and time (4) are concatenated and fed
    at every step to a stacked LSTM, followed by Linear(hidden -> embedding_dims).
    """

    def __init__(self, config: SingConfig):
        super().__init__()
        self.config = config
        self.instrument_table = nn.Embedding(config.num_instruments, config.instrument_dims)
        self.pitch_table = nn.Embedding(config.num_pitches, config.pitch_dims)
        self.velocity_table = VelocityTable(config.velocities, config.velocity_dims)
        self.time_table = nn.Embedding(config.time_steps, config.time_dims)
        inputs = config.instrument_dims + config.pitch_dims + config.velocity_dims + config.time_dims
        self.lstm = nn.LSTM(inputs, config.lstm_hidden, num_layers=config.lstm_layers, batch_first=True)
        self.output = nn.Linear(config.lstm_hidden, config.embedding_dims)

    def conditioning(
        self, instrument_embedding: torch.Tensor, pitch_midi: torch.Tensor, velocity: torch.Tensor,
        time_index: torch.Tensor,
    ) -> torch.Tensor:
        """LSTM input ``(batch, steps, 30)`` from per-voice parameters and time indices ``(batch, steps)``."""
        steps = time_index.shape[1]
        static = torch.cat(
            [instrument_embedding, self.pitch_table(pitch_midi.clamp(0, self.config.num_pitches - 1)),
             self.velocity_table(velocity)], dim=1,
        )
        times = self.time_table(time_index.clamp(0, self.config.time_steps - 1))
        return torch.cat([static[:, None, :].expand(-1, steps, -1), times], dim=2)

    def forward(
        self, instrument_embedding: torch.Tensor, pitch_midi: torch.Tensor, velocity: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None, *, start_frame: int = 0, frames: int | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Embeddings for frames ``start_frame .. start_frame + frames - 1``.

        Parameters
        ----------
        instrument_embedding : (batch, instrument_dims) float
        pitch_midi : (batch,) int64
        velocity : (batch,) float, MIDI velocity
        state : LSTM (h, c), each ``(layers, batch, hidden)``, or None for a fresh note

        Returns
        -------
        embeddings : (batch, frames, embedding_dims)
        state : the LSTM (h, c) after the last frame
        """
        frames = self.config.time_steps - start_frame if frames is None else frames
        time_index = torch.arange(start_frame, start_frame + frames, device=pitch_midi.device)
        x = self.conditioning(instrument_embedding, pitch_midi, velocity, time_index[None].expand(len(pitch_midi), -1))
        out, state = self.lstm(x, state)
        return self.output(out), state


class Sing(nn.Module):
    """The whole generator: (instrument, pitch, velocity) -> note (SING section 3).

    ``forward`` returns the decoder output ``(batch, 65024)``; ``generate`` trims it to the note
    ``(batch, 64000)`` at 16 kHz.
    """

    def __init__(self, config: SingConfig):
        super().__init__()
        self.config = config
        self.sequence_generator = SequenceGenerator(config)
        self.decoder = SingDecoder(config)

    def instrument_embedding(self, instrument: torch.Tensor) -> torch.Tensor:
        """Rows of the instrument table: ``(batch,)`` int64 -> ``(batch, instrument_dims)``."""
        return self.sequence_generator.instrument_table(instrument)

    def forward(self, instrument_embedding: torch.Tensor, pitch_midi: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
        embeddings, _ = self.sequence_generator(instrument_embedding, pitch_midi, velocity)
        return self.decoder(embeddings)

    @torch.inference_mode()
    def generate(self, instrument_embedding: torch.Tensor, pitch_midi: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
        """Whole notes, ``(batch, note_samples)`` float32 at ``config.sample_rate``."""
        trim = self.config.output_trim_samples
        return self.forward(instrument_embedding, pitch_midi, velocity)[:, trim:-trim]


class SingStreamingStep(nn.Module):
    """One streaming step of SING for a batch of voices (the graph exported to ONNX).

    State (all batch-first, so a voice is one row):
    ``lstm_h``, ``lstm_c`` ``(voices, layers, hidden)``; ``context`` ``(voices, kernel - 1, embedding_dims)``
    the previous embeddings the decoder's first conv sees; ``overlap`` ``(voices, window - hop)`` the
    overlap-add tail of earlier atoms.

    Step t feeds time index t to the LSTM; once ``t >= kernel - 1`` (8) a decoder frame is complete
    and its windowed atom is overlap-added. The hop returned at step t is the full decoder output's
    samples ``[(t - 8) * 256, (t - 7) * 256)`` (before the transposed conv's padding is removed), so
    step ``preroll_steps + k`` (13 + k) returns note samples ``[256 k, 256 (k + 1))``.
    """

    def __init__(self, sing: Sing):
        super().__init__()
        self.config = sing.config
        self.sequence_generator = sing.sequence_generator
        self.decoder = sing.decoder

    def forward(self, instrument_embedding, pitch_midi, velocity, time_index, lstm_h, lstm_c, context, overlap):
        """Advance every voice by one hop.

        Parameters
        ----------
        instrument_embedding : (voices, instrument_dims) float32
        pitch_midi : (voices,) int64
        velocity : (voices,) float32
        time_index : (voices,) int64
        lstm_h, lstm_c, context, overlap : state as in the class docstring

        Returns
        -------
        audio : (voices, hop) float32
        lstm_h, lstm_c, context, overlap : next state
        """
        cfg = self.config
        gen = self.sequence_generator
        x = gen.conditioning(instrument_embedding, pitch_midi, velocity, time_index[:, None])
        out, (h, c) = gen.lstm(x, (lstm_h.transpose(0, 1).contiguous(), lstm_c.transpose(0, 1).contiguous()))
        embedding = gen.output(out)  # (voices, 1, D)
        window = torch.cat([context, embedding], dim=1)  # (voices, kernel, D)
        dec = self.decoder
        hidden = dec.hidden(dec.conv(window.transpose(1, 2)))[:, :, 0]  # (voices, C)
        atom = hidden @ dec.synthesis.windowed_weight()[:, 0, :]  # (voices, window)
        complete = (time_index >= cfg.decoder_kernel_frames - 1).to(atom.dtype)[:, None]
        hop = cfg.hop_length_samples
        buffer = F.pad(overlap, (0, hop)) + atom * complete
        audio = buffer[:, :hop] + dec.synthesis.bias
        return audio, h.transpose(0, 1), c.transpose(0, 1), window[:, 1:], buffer[:, hop:]

    def initial_state(self, voices: int) -> dict[str, torch.Tensor]:
        """Zero state for ``voices`` fresh notes, keyed by the step's input names."""
        cfg = self.config
        return {
            "lstm_h": torch.zeros(voices, cfg.lstm_layers, cfg.lstm_hidden),
            "lstm_c": torch.zeros(voices, cfg.lstm_layers, cfg.lstm_hidden),
            "context": torch.zeros(voices, cfg.decoder_kernel_frames - 1, cfg.embedding_dims),
            "overlap": torch.zeros(voices, cfg.window_length_samples - cfg.hop_length_samples),
        }


class SingReplay(nn.Module):
    """Re-run a voice's last frames with another instrument embedding: the stream state it would have
    now had those frames been played with it (the graph behind the engine's crossfaded morph).

    From the LSTM state before frame ``t - K`` (or a fresh note's zero state with ``t`` frames), the
    LSTM runs frames ``t - K .. t - 1`` (``time_index``) in one sequence; the decoder context is the
    last ``kernel - 1`` (8) embeddings and the overlap the tails of the last 3 atoms, whose windows
    (9 frames each) need the last 11 embeddings: so ``K >= 11``, and the result equals
    :class:`SingStreamingStep` run over the same frames with the same LSTM start state, whatever
    the context and overlap were before ``t - K`` (an atom is 4 hops long).

    Inputs: ``instrument_embedding`` (voices, instrument_dims) float32, ``pitch_midi`` (voices,) int64,
    ``velocity`` (voices,) float32, ``time_index`` (voices, K) int64, ``lstm_h``, ``lstm_c`` (voices,
    layers, hidden) float32. Outputs: ``next_lstm_h``, ``next_lstm_c``, ``next_context``,
    ``next_overlap``, as the step's state before frame ``t``.
    """

    def __init__(self, sing: Sing):
        super().__init__()
        self.config = sing.config
        self.sequence_generator = sing.sequence_generator
        self.decoder = sing.decoder

    def forward(self, instrument_embedding, pitch_midi, velocity, time_index, lstm_h, lstm_c):
        cfg = self.config
        gen = self.sequence_generator
        kernel = cfg.decoder_kernel_frames
        hop = cfg.hop_length_samples
        window = cfg.window_length_samples
        x = gen.conditioning(instrument_embedding, pitch_midi, velocity, time_index)
        out, (h, c) = gen.lstm(x, (lstm_h.transpose(0, 1).contiguous(), lstm_c.transpose(0, 1).contiguous()))
        embeddings = gen.output(out)  # (voices, K, D)
        tail_atoms = window // hop - 1  # 3 atoms still ring into the next hop
        frames = embeddings[:, -(kernel - 1 + tail_atoms):]  # (voices, 11, D)
        dec = self.decoder
        hidden = dec.hidden(dec.conv(frames.transpose(1, 2)))  # (voices, C, 3)
        atoms = hidden.transpose(1, 2) @ dec.synthesis.windowed_weight()[:, 0, :]  # (voices, 3, window)
        complete = (time_index[:, -tail_atoms:] >= kernel - 1).to(atoms.dtype)[:, :, None]
        atoms = atoms * complete
        overlap = torch.zeros_like(atoms[:, 0, hop:])
        for age in range(tail_atoms):  # atom of frame t-1-age: its samples after (age + 1) hops
            start = (age + 1) * hop
            overlap = overlap + F.pad(atoms[:, tail_atoms - 1 - age, start:], (0, start - hop))
        return h.transpose(0, 1), c.transpose(0, 1), embeddings[:, -(kernel - 1):], overlap
