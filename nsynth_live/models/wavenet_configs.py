"""Frozen size configurations of the NSynth WaveNet autoencoder.

Source: Magenta ``magenta/models/nsynth/wavenet/h512_bo16.py`` (``Config.build``): 30-layer
non-causal encoder of width 128 with a 16-dim bottleneck pooled every 512 samples, 30-layer causal
WaveNet decoder with 512 residual / 256 skip channels, dilations ``2 ** (i % 10)``, kernel 3,
256-way mu-law softmax; NSynth paper (Engel et al. 2017, section 3.1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from nsynth_live.models.configs import config_from_dict
from nsynth_live.constants import NSYNTH_SAMPLE_RATE
from nsynth_live.functional.mu_law import MU_LAW_CLASSES


@dataclass(frozen=True)
class WaveNetAutoencoderConfig:
    """Sizes of a WaveNet autoencoder; the defaults are Magenta's h512_bo16.

    Attributes
    ----------
    sample_rate : int
        Hz of the audio the model reads and writes (16000 for NSynth).
    hop_length_samples : int
        Samples per encoding frame: the average-pooling window and stride (512).
    bottleneck_dims : int
        Channels of the encoding (16).
    encoder_channels, encoder_layers, encoder_dilation_cycle, encoder_kernel_size : int
        Encoder width (128), residual layers (30), layers per dilation cycle (10: dilation
        ``2 ** (i % 10)``), kernel taps (3, odd: SAME padding).
    residual_channels, skip_channels, decoder_layers, decoder_dilation_cycle, decoder_kernel_size : int
        Decoder residual width (512; the gated conv has twice that), skip width (256), residual
        layers (30), layers per dilation cycle (10), kernel taps (3).
    quantization_channels : int
        Softmax classes; must be 256 (8-bit mu-law).

    Raises
    ------
    ValueError
        From ``__post_init__`` if a size is not a positive int, the encoder kernel is even, the
        dilation cycle exceeds the layer count, or ``quantization_channels != 256``.
    """

    sample_rate: int = NSYNTH_SAMPLE_RATE
    hop_length_samples: int = 512
    bottleneck_dims: int = 16
    encoder_channels: int = 128
    encoder_layers: int = 30
    encoder_dilation_cycle: int = 10
    encoder_kernel_size: int = 3
    residual_channels: int = 512
    skip_channels: int = 256
    decoder_layers: int = 30
    decoder_dilation_cycle: int = 10
    decoder_kernel_size: int = 3
    quantization_channels: int = MU_LAW_CLASSES

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field.name} must be a positive int, got {value!r}")
        if self.encoder_kernel_size % 2 == 0:
            raise ValueError(
                f"encoder_kernel_size must be odd (SAME padding), got {self.encoder_kernel_size}; use 3"
            )
        if self.decoder_kernel_size < 2:
            raise ValueError(f"decoder_kernel_size must be >= 2, got {self.decoder_kernel_size}; use 3")
        if self.encoder_dilation_cycle > self.encoder_layers:
            raise ValueError(
                f"encoder_dilation_cycle must be <= encoder_layers ({self.encoder_layers}), "
                f"got {self.encoder_dilation_cycle}"
            )
        if self.decoder_dilation_cycle > self.decoder_layers:
            raise ValueError(
                f"decoder_dilation_cycle must be <= decoder_layers ({self.decoder_layers}), "
                f"got {self.decoder_dilation_cycle}"
            )
        if self.quantization_channels != MU_LAW_CLASSES:
            raise ValueError(
                f"quantization_channels must be {MU_LAW_CLASSES} (8-bit mu-law), got {self.quantization_channels}"
            )

    @property
    def encoder_dilations(self) -> tuple[int, ...]:
        """Dilation of each encoder layer, ``2 ** (i % encoder_dilation_cycle)``."""
        return tuple(2 ** (i % self.encoder_dilation_cycle) for i in range(self.encoder_layers))

    @property
    def decoder_dilations(self) -> tuple[int, ...]:
        """Dilation of each decoder layer, ``2 ** (i % decoder_dilation_cycle)``."""
        return tuple(2 ** (i % self.decoder_dilation_cycle) for i in range(self.decoder_layers))

    @property
    def decoder_receptive_field_samples(self) -> int:
        """Past samples one output depends on: shift (1) + startconv + dilated stack (6141 for h512_bo16)."""
        k = self.decoder_kernel_size - 1
        return 1 + k + k * sum(self.decoder_dilations)

    def to_dict(self) -> dict:
        """Plain dict of the fields (stored in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "WaveNetAutoencoderConfig":
        """Build from :meth:`to_dict` output; unknown keys raise ``ValueError`` naming them."""
        return config_from_dict(cls, values)


#: Named sizes. ``magenta`` is h512_bo16 (loads the released checkpoint); ``small`` and ``medium`` train on a CPU;
#: ``tiny`` is for tests.
WAVENET_CONFIGS: dict[str, WaveNetAutoencoderConfig] = {
    "magenta": WaveNetAutoencoderConfig(),
    # 0.23 M parameters. Decoder: 2 cycles of dilations 1..128, receptive field 1023 samples (4 periods
    # of MIDI 36), so 2048-sample crops train every tap on real audio and give the encoder 3x as many
    # crop starts per sample (where only the embedding tells the decoder the pitch) as Magenta's 6144.
    # ~0.5 s per 24 x 2048-sample step with bf16 autocast on 2 CPU cores.
    "small": WaveNetAutoencoderConfig(
        encoder_channels=32, encoder_layers=10, encoder_dilation_cycle=10,
        residual_channels=32, skip_channels=64, decoder_layers=16, decoder_dilation_cycle=8,
    ),
    # 0.73 M parameters: ``small`` with twice the decoder width (64 residual, 128 skip channels), for
    # more room to carry the sample one pitch period back (122-245 samples for MIDI 36-48), which
    # ``small`` hardly learned to use. ~0.86 s per 24 x 2048-sample step (bf16, 2 CPU cores).
    "medium": WaveNetAutoencoderConfig(
        encoder_channels=32, encoder_layers=10, encoder_dilation_cycle=10,
        residual_channels=64, skip_channels=128, decoder_layers=16, decoder_dilation_cycle=8,
    ),
    "tiny": WaveNetAutoencoderConfig(
        hop_length_samples=16, bottleneck_dims=4,
        encoder_channels=8, encoder_layers=4, encoder_dilation_cycle=4,
        residual_channels=8, skip_channels=8, decoder_layers=6, decoder_dilation_cycle=4,
    ),
}


def get_wavenet_config(name: str) -> WaveNetAutoencoderConfig:
    """Named configuration; ``KeyError`` listing the valid names if unknown."""
    try:
        return WAVENET_CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown WaveNet config {name!r}; choose one of {sorted(WAVENET_CONFIGS)}") from None
