"""Frozen configurations of SING (Defossez et al. 2018): the paper's size and our CPU default."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from nsynth_live.models.configs import config_from_dict
from nsynth_live.constants import NSYNTH_NOTE_SAMPLES, NSYNTH_SAMPLE_RATE, NSYNTH_VELOCITIES


def _check_sizes(config, positive: tuple[str, ...]) -> None:
    """What both SING configs require: the named sizes > 0 and at least two increasing velocity rows.

    Raises
    ------
    ValueError
        Naming the config class and the field.
    """
    for name in positive:
        if getattr(config, name) <= 0:
            raise ValueError(f"{type(config).__name__}.{name} must be > 0, got {getattr(config, name)}")
    if list(config.velocities) != sorted(set(config.velocities)) or len(config.velocities) < 2:
        raise ValueError(f"velocities must be >= 2 increasing values, got {config.velocities}")


@dataclass(frozen=True)
class SingConfig:
    """Sizes of SING's encoder, decoder and sequence generator (SING section 3, Table 1).

    Attributes
    ----------
    sample_rate : int
        Hz.
    hop_length_samples : int
        Samples between embeddings (256 = 16 ms).
    window_length_samples : int
        Kernel of the windowed encoder conv and decoder transposed conv (1024).
    embedding_dims : int
        Size of one encoder / sequence-generator embedding (128).
    conv_channels : int
        Hidden channels of encoder and decoder (4096 in the paper).
    decoder_kernel_frames : int
        Kernel of the decoder's first conv, in frames (9: 4 frames of look-ahead).
    lstm_hidden : int
        Hidden size of each LSTM layer (1024 in the paper).
    lstm_layers : int
        Number of stacked LSTM layers (3).
    instrument_dims, pitch_dims, velocity_dims, time_dims : int
        Lookup-table widths (16, 8, 2, 4).
    num_instruments : int
        Rows of the instrument table.
    num_pitches : int
        Rows of the pitch table, indexed by MIDI note number (128).
    velocities : tuple of int
        MIDI velocities of the velocity table's rows; other velocities interpolate linearly.
    note_samples : int
        Samples of a dataset note (64000 = 4 s).
    pad_samples : int
        Zeros added to each side of a note before encoding (2304 = 9 frames).
    """

    name: str = "default"
    sample_rate: int = NSYNTH_SAMPLE_RATE
    hop_length_samples: int = 256
    window_length_samples: int = 1024
    embedding_dims: int = 128
    conv_channels: int = 512
    decoder_kernel_frames: int = 9
    lstm_hidden: int = 256
    lstm_layers: int = 3
    instrument_dims: int = 16
    pitch_dims: int = 8
    velocity_dims: int = 2
    time_dims: int = 4
    num_instruments: int = 20
    num_pitches: int = 128
    velocities: tuple[int, ...] = NSYNTH_VELOCITIES
    note_samples: int = NSYNTH_NOTE_SAMPLES
    pad_samples: int = 2304

    def __post_init__(self):
        positive = ("sample_rate", "hop_length_samples", "window_length_samples", "embedding_dims",
                    "conv_channels", "decoder_kernel_frames", "lstm_hidden", "lstm_layers",
                    "instrument_dims", "pitch_dims", "velocity_dims", "time_dims", "num_instruments",
                    "num_pitches")
        _check_sizes(self, positive)
        if self.window_length_samples != 4 * self.hop_length_samples:
            raise ValueError(
                f"window_length_samples ({self.window_length_samples}) must be 4 x hop_length_samples "
                f"({self.hop_length_samples}): the streaming overlap-add assumes 75% overlap"
            )
        if self.decoder_kernel_frames % 2 != 1:
            raise ValueError(f"decoder_kernel_frames must be odd, got {self.decoder_kernel_frames}")
        if self.pad_samples % self.hop_length_samples:
            raise ValueError(f"pad_samples ({self.pad_samples}) must be a multiple of the hop")

    # Derived lengths (SING section 3; docs/model.md "SING: lengths").
    @property
    def padded_samples(self) -> int:
        """Samples of a padded note: 64000 + 2 x 2304 = 68608."""
        return self.note_samples + 2 * self.pad_samples

    @property
    def time_steps(self) -> int:
        """Embedding frames per note: (68608 - 1024) / 256 + 1 = 265 (rows of the time table)."""
        return (self.padded_samples - self.window_length_samples) // self.hop_length_samples + 1

    @property
    def lookahead_frames(self) -> int:
        """Frames of future context the decoder's first conv needs (4)."""
        return self.decoder_kernel_frames // 2

    @property
    def decoder_padding_samples(self) -> int:
        """Padding of the transposed conv: window - hop = 768."""
        return self.window_length_samples - self.hop_length_samples

    @property
    def decoder_output_samples(self) -> int:
        """Samples of the decoder's output: (265 - 8 - 1) * 256 + 1024 - 2 * 768 = 65024."""
        frames = self.time_steps - self.decoder_kernel_frames + 1
        return (frames - 1) * self.hop_length_samples + self.window_length_samples - 2 * self.decoder_padding_samples

    @property
    def output_trim_samples(self) -> int:
        """Samples stripped at each side of the decoder output to get the note: (65024 - 64000) / 2 = 512."""
        return (self.decoder_output_samples - self.note_samples) // 2

    @property
    def preroll_steps(self) -> int:
        """Streaming steps before the first audible hop: pad frames (9) + look-ahead (4) = 13."""
        return self.pad_samples // self.hop_length_samples + self.lookahead_frames

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SingConfig":
        """Rebuild a config; unknown keys raise ValueError naming them."""
        return config_from_dict(cls, data)


# The paper's sizes: decoder 42.5 M, LSTM 21.1 M parameters (SING section 3;
# docs/model.md "SING: architecture").
SING_PAPER = SingConfig(name="paper", conv_channels=4096, lstm_hidden=1024, num_instruments=1006)
# Our default: trains from scratch on a 2-core CPU in well under 2 hours (see models/sing_default.md).
SING_DEFAULT = SingConfig(name="default")

SING_CONFIGS = {"paper": SING_PAPER, "default": SING_DEFAULT}


@dataclass(frozen=True)
class SingHarmonicConfig:
    """Model v3: SING's sequence generator driving a harmonic-plus-noise synthesiser at the note's
    exact f0 (Defossez et al. 2018, section 3.2; Engel et al. 2020, section 3).

    Attributes
    ----------
    name : str
    sample_rate : int
        Hz of the generated audio (48000: full band).
    hop_length_samples : int
        Samples per frame and per streaming step (512 = 10.7 ms at 48 kHz).
    note_samples : int
        Samples of a dataset note (192000 = 4 s).
    lstm_hidden, lstm_layers : int
        The sequence generator's LSTM.
    instrument_dims, pitch_dims, velocity_dims, time_dims : int
        Lookup-table widths (SING's 16, 8, 2, 4).
    num_instruments, num_pitches : int
        Rows of the instrument and pitch tables.
    velocities : tuple of int
        MIDI velocities of the velocity table's rows.
    n_harmonics : int
        Partials of the harmonic synthesiser (those above 0.45 x sample_rate are muted per note).
    n_noise_bands : int
        Bands of the filtered-noise synthesiser (log-spaced from 40 Hz to Nyquist).
    noise_table_samples : int
        Period of the fixed band-noise table (65536 = 1.37 s at 48 kHz).
    inharmonicity : bool
        Learn a stiff-string coefficient per (instrument, pitch): ``f_k = k f0 sqrt(1 + B k^2)``.
    max_inharmonicity : float
        Upper bound of ``B``.
    """

    name: str = "v3"
    sample_rate: int = 48_000
    hop_length_samples: int = 512
    note_samples: int = 192_000
    lstm_hidden: int = 256
    lstm_layers: int = 3
    instrument_dims: int = 16
    pitch_dims: int = 8
    velocity_dims: int = 2
    time_dims: int = 4
    num_instruments: int = 20
    num_pitches: int = 128
    velocities: tuple[int, ...] = NSYNTH_VELOCITIES
    n_harmonics: int = 64
    n_noise_bands: int = 16
    noise_table_samples: int = 65_536
    inharmonicity: bool = True
    max_inharmonicity: float = 2e-3
    architecture: str = "harmonic"

    def __post_init__(self):
        positive = ("sample_rate", "hop_length_samples", "note_samples", "lstm_hidden", "lstm_layers",
                    "instrument_dims", "pitch_dims", "velocity_dims", "time_dims", "num_instruments",
                    "num_pitches", "n_harmonics", "n_noise_bands", "noise_table_samples")
        _check_sizes(self, positive)
        if self.architecture != "harmonic":
            raise ValueError(f"SingHarmonicConfig.architecture must be 'harmonic', got {self.architecture!r}")
        if self.noise_table_samples % self.hop_length_samples:
            raise ValueError(f"noise_table_samples ({self.noise_table_samples}) must be a multiple of the hop "
                             f"({self.hop_length_samples})")
        if not 0.0 <= self.max_inharmonicity < 0.1:
            raise ValueError(f"max_inharmonicity must be in [0, 0.1), got {self.max_inharmonicity}")

    @property
    def time_steps(self) -> int:
        """Frames per note, the rows of the time table: 192000 / 512 = 375."""
        return -(-self.note_samples // self.hop_length_samples)

    @property
    def preroll_steps(self) -> int:
        """Steps before the first audible hop: none (no encoder padding, no decoder look-ahead)."""
        return 0

    @property
    def lookahead_frames(self) -> int:
        """Frames of future context the synthesiser needs: none (hop t ramps from frame t-1 to t)."""
        return 0

    @property
    def n_controls(self) -> int:
        """Amplitudes per frame: partials plus noise bands."""
        return self.n_harmonics + self.n_noise_bands

    @property
    def embedding_dims(self) -> int:
        """Width of the LSTM's per-frame output (SING's embedding): the total amplitude, the partials'
        distribution and the noise bands, before their output nonlinearity."""
        return 1 + self.n_controls

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SingHarmonicConfig":
        """Rebuild a config; unknown keys raise ValueError naming them."""
        return config_from_dict(cls, data)


SING_V3 = SingHarmonicConfig(name="v3")
SING_V3_HARMONIC_ONLY = SingHarmonicConfig(name="v3-harmonic", inharmonicity=False)


def sing_config_from_dict(data: dict):
    """A :class:`SingConfig` or a :class:`SingHarmonicConfig`, by the dict's ``architecture`` key
    (absent in SING v1/v2 files: the convolutional decoder)."""
    if data.get("architecture") == "harmonic":
        return SingHarmonicConfig.from_dict(data)
    return SingConfig.from_dict(data)
