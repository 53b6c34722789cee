"""Model v3: SING's sequence generator driving a harmonic-plus-noise synthesiser at the exact MIDI f0.

SING (Defossez et al. 2018, section 3.2) generates a note frame by frame with an LSTM over
(instrument, pitch, velocity, time) embeddings; its convolutional decoder then has to learn phase
rotation, and its partials lock to multiples of the frame rate (62.5 Hz at 16 kHz / 256). Here the
LSTM's output per frame is instead the controls of a DDSP synthesiser (Engel et al. 2020, section 3):
a total amplitude, a distribution over ``n_harmonics`` partials and ``n_noise_bands`` filtered-noise
gains. The partials' frequencies come from the MIDI note number, not from the network, so a note
cannot be out of tune; an optional learned stiff-string coefficient per (instrument, pitch) stretches
them as a piano's (``f_k = k f0 sqrt(1 + B k^2)``). The DSP is
:mod:`nsynth_live.functional.harmonic_synth`.

``SingHarmonic`` renders whole notes or crops (training); ``SingHarmonicStep`` is one hop for a batch
of voices with explicit state (the graph exported to ONNX: same protocol as SING's step), and
``SingHarmonicReplay`` re-runs a voice's last frames with another instrument (the engine's morph).
All three give the same samples (tests/models/test_sing_harmonic.py).
"""

from __future__ import annotations

import torch
from torch import nn

from nsynth_live.functional.harmonic_synth import (
    exp_sigmoid,
    harmonic_amplitudes,
    make_noise_table,
    midi_f0_hz,
    noise_blocks,
    partial_frequencies_hz,
    render_hops,
)
from nsynth_live.models.sing import SequenceGenerator
from nsynth_live.models.sing_configs import SingHarmonicConfig

# Initial output biases: a new model starts quiet and mostly harmonic (DDSP starts its noise 5 logits low).
INITIAL_AMPLITUDE_LOGIT = -1.4  # exp_sigmoid(-1.4) = 0.05 peak amplitude
INITIAL_NOISE_LOGIT = -5.0  # exp_sigmoid(-5.0) = 2e-5 RMS per band (DDSP starts its noise 5 logits low)
INITIAL_INHARMONICITY_LOGIT = -8.0  # B = 2e-3 * sigmoid(-8) = 7e-7: harmonic to 0.1 cent at k = 8
NOISE_TABLE_SEED = 0


class SingHarmonic(nn.Module):
    """(instrument embedding, MIDI pitch, velocity) -> note, through per-frame synthesiser controls.

    Parameters
    ----------
    config : SingHarmonicConfig
    """

    def __init__(self, config: SingHarmonicConfig):
        super().__init__()
        self.config = config
        self.sequence_generator = SequenceGenerator(config)
        output = self.sequence_generator.output
        with torch.no_grad():
            output.bias.zero_()
            output.bias[0] = INITIAL_AMPLITUDE_LOGIT
            output.bias[1 + config.n_harmonics:] = INITIAL_NOISE_LOGIT
        self.inharmonicity_head = nn.Linear(config.instrument_dims + config.pitch_dims, 1)
        with torch.no_grad():
            self.inharmonicity_head.weight.mul_(0.1)
            self.inharmonicity_head.bias.fill_(INITIAL_INHARMONICITY_LOGIT)
        table = make_noise_table(config.n_noise_bands, config.noise_table_samples, sample_rate=config.sample_rate,
                                 seed=NOISE_TABLE_SEED)
        # (table / hop, hop, bands), made from a fixed seed: not saved in checkpoints
        self.register_buffer("noise_blocks", noise_blocks(torch.from_numpy(table), config.hop_length_samples),
                             persistent=False)

    def instrument_embedding(self, instrument: torch.Tensor) -> torch.Tensor:
        """Rows of the instrument table: ``(batch,)`` int64 -> ``(batch, instrument_dims)``."""
        return self.sequence_generator.instrument_table(instrument)

    def inharmonicity(self, instrument_embedding: torch.Tensor, pitch_midi: torch.Tensor) -> torch.Tensor | None:
        """Learned stiff-string coefficient ``B`` in ``[0, max_inharmonicity]`` per voice, ``(batch,)``
        float32, or None when the config has no stretch."""
        cfg = self.config
        if not cfg.inharmonicity:
            return None
        pitch_row = self.sequence_generator.pitch_table(pitch_midi.clamp(0, cfg.num_pitches - 1))
        logit = self.inharmonicity_head(torch.cat([instrument_embedding, pitch_row], dim=1))[:, 0]
        return cfg.max_inharmonicity * torch.sigmoid(logit)

    def partial_frequencies(self, instrument_embedding: torch.Tensor, pitch_midi: torch.Tensor) -> torch.Tensor:
        """``(batch, n_harmonics)`` float32 Hz of each voice's partials (MIDI f0, learned stretch)."""
        return partial_frequencies_hz(midi_f0_hz(pitch_midi), self.config.n_harmonics,
                                      self.inharmonicity(instrument_embedding, pitch_midi))

    def amplitudes(self, outputs: torch.Tensor, freqs_hz: torch.Tensor) -> torch.Tensor:
        """The LSTM's outputs ``(batch, frames, 1 + n_controls)`` -> linear amplitudes
        ``(batch, frames, n_controls)``: partials' peak amplitudes, then noise bands' RMS gains."""
        k = self.config.n_harmonics
        harmonics = harmonic_amplitudes(exp_sigmoid(outputs[..., 0]), outputs[..., 1:1 + k], freqs_hz,
                                        sample_rate=self.config.sample_rate)
        return torch.cat([harmonics, exp_sigmoid(outputs[..., 1 + k:])], dim=-1)

    def synthesize(self, amplitudes: torch.Tensor, freqs_hz: torch.Tensor, first_frame: torch.Tensor) -> torch.Tensor:
        """Hops from amplitudes ``(batch, frames + 1, n_controls)`` (row 0: the frame before the first
        hop) -> ``(batch, frames * hop)``; see :func:`~nsynth_live.functional.harmonic_synth.render_hops`."""
        cfg = self.config
        k = cfg.n_harmonics
        return render_hops(amplitudes[..., :k], amplitudes[..., k:], freqs_hz, first_frame, self.noise_blocks,
                           sample_rate=cfg.sample_rate, hop_length_samples=cfg.hop_length_samples)

    def forward(self, instrument_embedding: torch.Tensor, pitch_midi: torch.Tensor, velocity: torch.Tensor, *,
                first_frame: torch.Tensor | None = None, frames: int | None = None,
                gradient_frames_before: int | None = None) -> torch.Tensor:
        """Hops ``first_frame .. first_frame + frames - 1`` of each note (default: the whole note).

        Parameters
        ----------
        instrument_embedding : (batch, instrument_dims) float32
        pitch_midi : (batch,) int64
        velocity : (batch,) float32, MIDI velocity
        first_frame : (batch,) int64, optional (default 0)
        frames : int, optional (default: ``time_steps - max(first_frame)``)
        gradient_frames_before : int, optional
            Truncated backpropagation through time: the LSTM runs without gradient up to this many
            frames before the earliest crop (the same samples, far less work in training).

        Returns
        -------
        (batch, frames * hop_length_samples) float32 at ``config.sample_rate``

        Raises
        ------
        ValueError
            If a crop runs past the note's last frame.
        """
        cfg = self.config
        batch = pitch_midi.shape[0]
        if first_frame is None:
            first_frame = torch.zeros(batch, dtype=torch.long, device=pitch_midi.device)
        if frames is None:
            frames = cfg.time_steps - int(first_frame.max())
        end = int(first_frame.max()) + frames
        if end > cfg.time_steps or frames < 1:
            raise ValueError(f"frames {int(first_frame.min())}..{end - 1} are not inside the note's "
                             f"{cfg.time_steps} frames")
        gen = self.sequence_generator
        prefix = 0 if gradient_frames_before is None else max(0, int(first_frame.min()) - 1 - gradient_frames_before)
        state = None
        if prefix:
            with torch.no_grad():
                _, state = gen(instrument_embedding, pitch_midi, velocity, frames=prefix)
        outputs, _ = gen(instrument_embedding, pitch_midi, velocity, state, start_frame=prefix, frames=end - prefix)
        freqs = self.partial_frequencies(instrument_embedding, pitch_midi)
        amplitudes = self.amplitudes(outputs, freqs)  # frames prefix .. end - 1
        if prefix == 0:
            amplitudes = torch.cat([torch.zeros_like(amplitudes[:, :1]), amplitudes], dim=1)  # frame -1: silence
        # row j of `amplitudes` is frame prefix - 1 + j (prefix == 0) or prefix + j
        offset = 1 if prefix == 0 else -prefix
        rows = first_frame[:, None] - 1 + offset + torch.arange(frames + 1, device=pitch_midi.device)
        window = amplitudes.gather(1, rows[:, :, None].expand(-1, -1, amplitudes.shape[2]))
        return self.synthesize(window, freqs, first_frame)

    @torch.inference_mode()
    def generate(self, instrument_embedding: torch.Tensor, pitch_midi: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
        """Whole notes, ``(batch, note_samples)`` float32 at ``config.sample_rate``."""
        return self.forward(instrument_embedding, pitch_midi, velocity)[:, :self.config.note_samples]


class SingHarmonicStep(nn.Module):
    """One hop of :class:`SingHarmonic` for a batch of voices: the streaming ONNX graph.

    State (batch-first): ``lstm_h``, ``lstm_c`` ``(voices, layers, hidden)`` and ``context``
    ``(voices, 1, n_controls)``, the amplitudes of the previous frame (zeros for a new note). Step
    ``t`` returns note samples ``[t hop, (t + 1) hop)``: there is no pre-roll.
    """

    def __init__(self, model: SingHarmonic):
        super().__init__()
        self.config = model.config
        self.model = model

    def forward(self, instrument_embedding, pitch_midi, velocity, time_index, lstm_h, lstm_c, context):
        """Advance every voice by one hop.

        Parameters
        ----------
        instrument_embedding : (voices, instrument_dims) float32
        pitch_midi : (voices,) int64
        velocity : (voices,) float32
        time_index : (voices,) int64
        lstm_h, lstm_c, context : state as in the class docstring

        Returns
        -------
        audio : (voices, hop) float32
        lstm_h, lstm_c, context : next state
        """
        model = self.model
        gen = model.sequence_generator
        x = gen.conditioning(instrument_embedding, pitch_midi, velocity, time_index[:, None])
        out, (h, c) = gen.lstm(x, (lstm_h.transpose(0, 1).contiguous(), lstm_c.transpose(0, 1).contiguous()))
        freqs = model.partial_frequencies(instrument_embedding, pitch_midi)
        amplitudes = model.amplitudes(gen.output(out), freqs)  # (voices, 1, n_controls)
        audio = model.synthesize(torch.cat([context, amplitudes], dim=1), freqs, time_index)
        return audio, h.transpose(0, 1), c.transpose(0, 1), amplitudes

    def initial_state(self, voices: int) -> dict[str, torch.Tensor]:
        """Zero state for ``voices`` new notes, keyed by the step's input names."""
        cfg = self.config
        return {
            "lstm_h": torch.zeros(voices, cfg.lstm_layers, cfg.lstm_hidden),
            "lstm_c": torch.zeros(voices, cfg.lstm_layers, cfg.lstm_hidden),
            "context": torch.zeros(voices, 1, cfg.n_controls),
        }


class SingHarmonicReplay(nn.Module):
    """Re-run frames ``time_index`` (voices, K >= 1) of each voice from an LSTM state with another
    instrument embedding: the state :class:`SingHarmonicStep` would have after them (the engine's
    morph). Only the LSTM state is needed at the window's start, and only the last frame's amplitudes
    matter after it, so any ``K >= 1`` equals stepping exactly.

    Inputs ``instrument_embedding, pitch_midi, velocity, time_index, lstm_h, lstm_c``; outputs
    ``next_lstm_h, next_lstm_c, next_context``.
    """

    def __init__(self, model: SingHarmonic):
        super().__init__()
        self.config = model.config
        self.model = model

    def forward(self, instrument_embedding, pitch_midi, velocity, time_index, lstm_h, lstm_c):
        model = self.model
        gen = model.sequence_generator
        x = gen.conditioning(instrument_embedding, pitch_midi, velocity, time_index)
        out, (h, c) = gen.lstm(x, (lstm_h.transpose(0, 1).contiguous(), lstm_c.transpose(0, 1).contiguous()))
        freqs = model.partial_frequencies(instrument_embedding, pitch_midi)
        amplitudes = model.amplitudes(gen.output(out[:, -1:]), freqs)
        return h.transpose(0, 1), c.transpose(0, 1), amplitudes
