"""The NSynth WaveNet autoencoder (Engel et al. 2017), layer for layer as Magenta's h512_bo16.

Source: Magenta ``magenta/models/nsynth/wavenet/h512_bo16.py`` (``Config.build``) and
``wavenet/masked.py``; NSynth paper section 3.1 and figure 1.

Layer names are Magenta's variable scopes, so converting a TF checkpoint is a table:
Magenta ``<name>/W`` (``[1, K, Cin, Cout]``) <-> ``encoder.layers.<name>.weight`` or
``decoder.layers.<name>.weight`` (``[Cout, Cin, K]``), ``<name>/biases`` <-> ``...bias``.

Shapes: audio ``(batch, time)`` float in ``[-1, 1]`` at ``config.sample_rate``; network input
``(batch, time)`` = mu-law code / 128; encodings ``(batch, frames, bottleneck_dims)`` with
``frames = time / hop_length_samples``; logits ``(batch, 256, time)`` over mu-law classes
``q + 128``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nsynth_live.functional.mu_law import mu_law_code_to_class, mu_law_code_to_input, mu_law_encode
from nsynth_live.models.checkpoint import load_checkpoint, load_state_dict_checked, save_checkpoint
from nsynth_live.models.wavenet_configs import WaveNetAutoencoderConfig, get_wavenet_config
from nsynth_live.nn.causal_conv import CausalConv1d, SameConv1d

WAVENET_MODEL_NAME = "wavenet_autoencoder"  # model family stored in checkpoints


def _check_time(time_samples: int, hop_length_samples: int) -> None:
    if time_samples % hop_length_samples or time_samples == 0:
        raise ValueError(
            f"audio length must be a positive multiple of hop_length_samples={hop_length_samples}, "
            f"got {time_samples} samples; pad it (e.g. nsynth_live.models.wavenet_ae.pad_to_hop)"
        )


def pad_to_hop(audio: torch.Tensor, *, hop_length_samples: int) -> torch.Tensor:
    """Zero-pad the time axis (last) to the next multiple of ``hop_length_samples`` (at least one hop)."""
    time_samples = audio.shape[-1]
    target = max(hop_length_samples, -(-time_samples // hop_length_samples) * hop_length_samples)
    return F.pad(audio, (0, target - time_samples))


def upsample_frames(frames: torch.Tensor, *, hop_length_samples: int) -> torch.Tensor:
    """Nearest-neighbour upsampling of per-frame values: sample ``t`` takes frame ``t // hop``.

    Parameters
    ----------
    frames : torch.Tensor, shape (batch, channels, frames)

    Returns
    -------
    torch.Tensor, shape (batch, channels, frames * hop_length_samples)
    """
    return frames.repeat_interleave(hop_length_samples, dim=-1)


def shift_right(x: torch.Tensor) -> torch.Tensor:
    """One zero in front, last sample dropped, on the last axis (Magenta ``masked.shift_right``)."""
    return F.pad(x, (1, -1))


class WaveNetEncoder(nn.Module):
    """Non-causal temporal encoder: audio -> ``(batch, frames, bottleneck_dims)`` embeddings.

    ``ae_startconv`` (k=3, no activation); per layer ``t = relu(en)``, ``ae_dilatedconv_i``,
    ``relu``, ``en += ae_res_i(t)``; ``ae_bottleneck`` (1x1, no activation); average pooling of
    ``hop_length_samples`` with the same stride.
    """

    def __init__(self, config: WaveNetAutoencoderConfig):
        super().__init__()
        self.config = config
        width, k = config.encoder_channels, config.encoder_kernel_size
        layers = {"ae_startconv": SameConv1d(1, width, kernel_size=k)}
        for i, dilation in enumerate(config.encoder_dilations, start=1):
            layers[f"ae_dilatedconv_{i}"] = SameConv1d(width, width, kernel_size=k, dilation=dilation)
            layers[f"ae_res_{i}"] = SameConv1d(width, width, kernel_size=1)
        layers["ae_bottleneck"] = SameConv1d(width, config.bottleneck_dims, kernel_size=1)
        self.layers = nn.ModuleDict(layers)

    def forward(self, x_scaled: torch.Tensor) -> torch.Tensor:
        """Encode quantised audio.

        Parameters
        ----------
        x_scaled : torch.Tensor, float32, shape (batch, time)
            Mu-law codes / 128; ``time`` a positive multiple of ``hop_length_samples``.

        Returns
        -------
        torch.Tensor, float32, shape (batch, time / hop_length_samples, bottleneck_dims)

        Raises
        ------
        ValueError
            If ``time`` is not a positive multiple of the hop.
        """
        hop = self.config.hop_length_samples
        _check_time(x_scaled.shape[-1], hop)
        layers = self.layers
        en = layers["ae_startconv"](x_scaled.unsqueeze(1))
        for i in range(1, self.config.encoder_layers + 1):
            t = layers[f"ae_dilatedconv_{i}"](F.relu(en))
            en = en + layers[f"ae_res_{i}"](F.relu(t))
        en = layers["ae_bottleneck"](en)
        en = F.avg_pool1d(en, kernel_size=hop, stride=hop)
        return en.transpose(1, 2)


class WaveNetDecoder(nn.Module):
    """Causal WaveNet decoder conditioned on the encodings; outputs logits over 256 mu-law classes.

    ``startconv`` (causal k=3) on the shifted input, ``skip_start``; per layer the gated
    ``dilatedconv_i`` + ``cond_map_i`` (sigmoid of the FIRST half times tanh of the second),
    ``res_i`` and ``skip_i``; then ``relu``, ``out1`` + ``cond_map_out1``, ``relu``, ``logits``.
    """

    def __init__(self, config: WaveNetAutoencoderConfig):
        super().__init__()
        self.config = config
        r, s, z, k = config.residual_channels, config.skip_channels, config.bottleneck_dims, config.decoder_kernel_size
        layers = {
            "startconv": CausalConv1d(1, r, kernel_size=k),
            "skip_start": SameConv1d(r, s, kernel_size=1),
        }
        for i, dilation in enumerate(config.decoder_dilations, start=1):
            layers[f"dilatedconv_{i}"] = CausalConv1d(r, 2 * r, kernel_size=k, dilation=dilation)
            layers[f"cond_map_{i}"] = SameConv1d(z, 2 * r, kernel_size=1)
            layers[f"res_{i}"] = SameConv1d(r, r, kernel_size=1)
            layers[f"skip_{i}"] = SameConv1d(r, s, kernel_size=1)
        layers["out1"] = SameConv1d(s, s, kernel_size=1)
        layers["cond_map_out1"] = SameConv1d(z, s, kernel_size=1)
        layers["logits"] = SameConv1d(s, config.quantization_channels, kernel_size=1)
        self.layers = nn.ModuleDict(layers)

    def forward(self, x_scaled: torch.Tensor, encoding: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits for every sample (training path).

        Parameters
        ----------
        x_scaled : torch.Tensor, float32, shape (batch, time)
            Mu-law codes / 128 of the target audio; the decoder sees them shifted right by one.
        encoding : torch.Tensor, float32, shape (batch, frames, bottleneck_dims)
            ``frames * hop_length_samples == time``.

        Returns
        -------
        torch.Tensor, float32, shape (batch, 256, time)
            Logits of sample ``t`` given samples ``< t`` and the encoding.

        Raises
        ------
        ValueError
            If the lengths disagree.
        """
        hop = self.config.hop_length_samples
        if x_scaled.shape[-1] != encoding.shape[1] * hop:
            raise ValueError(
                f"audio has {x_scaled.shape[-1]} samples but the encoding has {encoding.shape[1]} frames "
                f"x {hop} = {encoding.shape[1] * hop}; they must match"
            )
        layers = self.layers
        en = encoding.transpose(1, 2)  # (batch, dims, frames)
        l = layers["startconv"](shift_right(x_scaled).unsqueeze(1))
        s = layers["skip_start"](l)
        r = self.config.residual_channels
        for i in range(1, self.config.decoder_layers + 1):
            d = layers[f"dilatedconv_{i}"](l)
            d = d + upsample_frames(layers[f"cond_map_{i}"](en), hop_length_samples=hop)
            d = torch.sigmoid(d[:, :r]) * torch.tanh(d[:, r:])
            l = l + layers[f"res_{i}"](d)
            s = s + layers[f"skip_{i}"](d)
        s = layers["out1"](F.relu(s)) + upsample_frames(layers["cond_map_out1"](en), hop_length_samples=hop)
        return layers["logits"](F.relu(s))


class WaveNetAutoencoder(nn.Module):
    """Encoder + decoder with the mu-law front end (Magenta h512_bo16).

    Parameters
    ----------
    config : WaveNetAutoencoderConfig
        Sizes; ``WAVENET_CONFIGS["magenta"]`` loads the released checkpoint.
    """

    def __init__(self, config: WaveNetAutoencoderConfig):
        super().__init__()
        self.config = config
        self.encoder = WaveNetEncoder(config)
        self.decoder = WaveNetDecoder(config)

    @property
    def _dtype(self) -> torch.dtype:
        return self.decoder.layers["logits"].weight.dtype

    @classmethod
    def from_name(cls, name: str) -> "WaveNetAutoencoder":
        """Randomly initialised model of a named size (``magenta``, ``small``, ``tiny``)."""
        return cls(get_wavenet_config(name))

    @staticmethod
    def quantize(audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mu-law network input and class targets of audio.

        Parameters
        ----------
        audio : torch.Tensor, float, shape (batch, time), in [-1, 1]

        Returns
        -------
        x_scaled : torch.Tensor, float32, (batch, time), code / 128
        targets : torch.Tensor, int64, (batch, time), class ``q + 128``
        """
        codes = mu_law_encode(audio)
        return mu_law_code_to_input(codes), mu_law_code_to_class(codes)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Embeddings of audio: ``(batch, time)`` in [-1, 1] -> ``(batch, time / hop, bottleneck_dims)``.

        Raises
        ------
        ValueError
            If ``time`` is not a positive multiple of ``hop_length_samples`` (see :func:`pad_to_hop`).
        """
        x_scaled, _ = self.quantize(audio)
        return self.encoder(x_scaled.to(self._dtype))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits and their targets for a batch of crops.

        Parameters
        ----------
        audio : torch.Tensor, float32, shape (batch, time), in [-1, 1]

        Returns
        -------
        logits : torch.Tensor, float32, (batch, 256, time)
        targets : torch.Tensor, int64, (batch, time), classes ``q + 128``
        """
        x_scaled, targets = self.quantize(audio)
        x_scaled = x_scaled.to(self._dtype)
        encoding = self.encoder(x_scaled)
        return self.decoder(x_scaled, encoding), targets

    def loss(self, audio: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy in nats per sample (Magenta's training loss)."""
        logits, targets = self(audio)
        return F.cross_entropy(logits, targets)

    def save(self, path, *, extra: dict | None = None):
        """Write a versioned checkpoint (see ``nsynth_live.models.checkpoint``)."""
        return save_checkpoint(
            path, model=WAVENET_MODEL_NAME, config=self.config.to_dict(), state_dict=self.state_dict(),
            sample_rate=self.config.sample_rate, hop_length_samples=self.config.hop_length_samples, extra=extra,
        )

    @classmethod
    def load(cls, path, *, expected_sha256: str | None = None, map_location="cpu") -> "WaveNetAutoencoder":
        """Model from a checkpoint written by :meth:`save` or the Magenta converter.

        Raises
        ------
        ValueError
            If the checkpoint is not a WaveNet autoencoder of a known format version, its config is
            invalid, or a tensor is missing or mis-shaped (named with both shapes).
        """
        payload = load_checkpoint(path, model=WAVENET_MODEL_NAME, expected_sha256=expected_sha256,
                                  map_location=map_location)
        model = cls(WaveNetAutoencoderConfig.from_dict(payload["config"]))
        load_state_dict_checked(model, payload["state_dict"])
        return model
