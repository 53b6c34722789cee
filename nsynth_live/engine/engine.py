"""The polyphonic block-processing engine: events -> voices -> ONE batched model step -> audio.

No devices here. The live path (:class:`nsynth_live.engine.realtime.RealtimeRunner`) and the offline
renderer (:func:`nsynth_live.render.offline.render_events`) both call :meth:`Engine.render_hop` in a
loop: one code path, two clocks. The rules it follows (the hop's steps, timing, voices and
stealing, release, pitch range, the sustain loop, the morph, cached attacks) are in
``docs/engine.md``; the parts live in their own modules: :mod:`~nsynth_live.engine.voices` (phases,
allocation, envelopes), :mod:`~nsynth_live.engine.sustain_loop`, :mod:`~nsynth_live.engine.morph`,
:mod:`~nsynth_live.engine.master_bus`. This class holds the voice slots and runs the hop.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nsynth_live.functional.interpolation import bilinear_corner_weights
from nsynth_live.engine.events import (
    EventBatch,
    CC_RESET_ALL_CONTROLLERS,
    CC_SUSTAIN_PEDAL,
    SUSTAIN_ON_THRESHOLD,
    AllNotesOff,
    AllSoundOff,
    CachedNoteOn,
    ChannelPressure,
    ControlChange,
    NoteOff,
    NoteOn,
    PitchBend,
    ProgramChange,
    ReleaseAttack,
    SelectPreset,
    SetX,
    SetXY,
    SetY,
    Timed,
)
from nsynth_live.engine.callback import model_pitch_for_key
from nsynth_live.engine.controllers import ControllerState
from nsynth_live.engine.expression import Expression
from nsynth_live.engine.pitch_bend import MAX_RATIO, VoiceResampler
from nsynth_live.engine.master_bus import MasterBus, soft_clip
from nsynth_live.engine.morph import EmbeddingMorph
from nsynth_live.engine.sustain_loop import SustainLoop, crossfade_norm
from nsynth_live.engine.voices import (  # noqa: F401 - phases re-exported for the tests
    FREE,
    HELD,
    KILLING,
    LOGICAL_PHASES,
    RELEASED,
    SUSTAINED,
    free_slot,
    hop_envelope,
    key_pan,
    pan_gains,
    release_factor_per_sample,
    steal_victim,
)
from nsynth_live.engine.resample import make_resampler
from nsynth_live.runtime.notes import preroll
from nsynth_live.presets import (
    DEFAULT_PRESETS_DIR,
    Preset,
    PresetError,
    check_preset_instruments,
    list_presets,
    load_preset,
)
from nsynth_live.runtime.protocol import StreamingSynth, StreamSpec, replay, replay_state_keys

logger = logging.getLogger(__name__)

# Voice phases (one int8 per slot)
_LOGICAL = LOGICAL_PHASES
_LOOP, _MORPH = 1, 2  # kinds of a voice's crossfade into its second stream
REPLAY_MIN_FRAMES = 11  # a ring replay re-runs at least this many frames (SING's replay graph needs 11)

NONFINITE_WARNING_INTERVAL_SECONDS = 1.0  # s of wall clock, at most one warning about muted hops


@dataclass(frozen=True)
class EngineConfig:
    """Tuning of the engine (times in seconds at the model rate).

    Attributes
    ----------
    attack_seconds : float
        Linear fade-in at the first audible hop of a note (guards against a model that starts
        with a step).
    steal_fade_seconds : float
        Linear fade of a stolen / re-triggered voice, and at the end of the time table.
    all_sound_off_seconds : float
        Linear fade of every voice on CC120.
    morph_seconds : float
        Time for the instrument embedding to reach a new XY / preset target (the embedding's ramp).
    morph_mode : {"replay", "ramp"}
        ``"replay"``: on a new target each sounding voice's last ``morph_replay_frames`` frames are
        re-rendered with the target embedding and the voice crossfades into that stream over
        ``morph_crossfade_seconds`` (``docs/engine.md``, "Morph"). ``"ramp"``: only the embedding's
        ramp (the slower morph of earlier versions, for comparison).
    morph_replay_frames : int
        Frames a replay re-renders (>= 11; a note younger than ``morph_from_start_frames`` is
        re-rendered from its start).
    morph_from_start_frames : int
        A voice at most this many frames into its note is replayed from the note's start (exact).
    morph_crossfade_seconds : float
        Length of the power-preserving crossfade into the replayed stream.
    morph_replays_per_hop : int
        Voices replayed per hop at most (the cost bound); the others wait for the next hops, oldest
        request first.
    silence_threshold_db : float
        A released voice is freed when its envelope falls below this (dB).
    out_of_range : {"transpose", "ignore"}
        Policy for notes outside the model's pitch range.
    limiter_knee : float
        Soft-clipper knee (full scale 1): identity below, tanh above, never beyond 1.
    limiter_threshold : float
        Peak level the gain rider aims at, per hop.
    limiter_release_seconds : float
        Time constant of the gain rider's recovery.
    sustain_loop : SustainLoop or None
        None: :meth:`SustainLoop.for_spec` of the model.
    presets_dir : path
        Where ``SelectPreset`` / ``ProgramChange`` look for presets.
    corner_names : tuple of 4 str or None
        For a synth whose instruments are the pad's own corners (a bank player): every preset's
        corners are taken as these, so presets give XY, release and gain. None: presets name the
        model's instruments.
    """

    attack_seconds: float = 0.002
    steal_fade_seconds: float = 0.010
    all_sound_off_seconds: float = 0.010
    morph_seconds: float = 0.030
    morph_mode: str = "replay"
    morph_replay_frames: int = 12
    morph_from_start_frames: int = 24
    morph_crossfade_seconds: float = 0.032
    morph_replays_per_hop: int = 6
    silence_threshold_db: float = -80.0
    out_of_range: str = "transpose"
    limiter_knee: float = 0.8
    limiter_threshold: float = 0.9
    limiter_release_seconds: float = 0.2
    sustain_loop: SustainLoop | None = None
    presets_dir: Path = field(default=DEFAULT_PRESETS_DIR)
    corner_names: tuple[str, str, str, str] | None = None

    def __post_init__(self):
        for name in ("attack_seconds", "steal_fade_seconds", "all_sound_off_seconds",
                     "morph_seconds", "morph_crossfade_seconds", "limiter_release_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 < value <= 1.0):
                raise ValueError(f"{name} must be in (0, 1] s, got {value!r}")
        if not -140.0 <= self.silence_threshold_db <= -40.0:
            raise ValueError(f"silence_threshold_db must be in [-140, -40], got "
                             f"{self.silence_threshold_db!r}")
        if self.morph_mode not in ("replay", "ramp"):
            raise ValueError(f"morph_mode must be 'replay' or 'ramp', got {self.morph_mode!r}")
        for name, low in (("morph_replay_frames", 11), ("morph_from_start_frames", 1), ("morph_replays_per_hop", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 1024:
                raise ValueError(f"{name} must be an int in [{low}, 1024], got {value!r}")
        if self.out_of_range not in ("transpose", "ignore"):
            raise ValueError(f"out_of_range must be 'transpose' or 'ignore', got {self.out_of_range!r}")
        if not 0.1 <= self.limiter_knee < 1.0:
            raise ValueError(f"limiter_knee must be in [0.1, 1), got {self.limiter_knee!r}")
        if not 0.1 <= self.limiter_threshold <= 1.0:
            raise ValueError(f"limiter_threshold must be in [0.1, 1], got {self.limiter_threshold!r}")


@dataclass(frozen=True)
class LatencyReport:
    """Expected worst-case latency from a control event to the sound at the device, in ms.

    Attributes
    ----------
    output_sample_rate : int
        Hz.
    block_size : int
        Device block, frames.
    block_ms : float
        The device buffer.
    hop_ms : float
        An event waits up to one model hop for the next ``render_hop``.
    ring_prefill_ms : float
        What the realtime runner keeps queued ahead of the callback: ``prefill_hops`` hops plus
        one block.
    model_lookahead_ms : float
        Look-ahead added to a note-on: 0, because the decoder's look-ahead is computed as a
        pre-roll at note-on.
    resampler_delay_ms : float
        Group delay of the 16 kHz -> device-rate resampler.
    note_on_ms : float or None
        Worst case for a note-on played from the attack cache by the realtime runner: it waits for
        the next device block at most and starts there (the cached attack's resampler delay is
        compensated); None without an attack cache. The other terms then apply to everything
        else (note-offs, XY, presets) and to notes the cache cannot play.
    """

    output_sample_rate: int
    block_size: int
    block_ms: float
    hop_ms: float
    ring_prefill_ms: float
    model_lookahead_ms: float
    resampler_delay_ms: float
    note_on_ms: float | None = None

    @property
    def total_ms(self) -> float:
        """Sum of all the terms (worst case)."""
        return (self.block_ms + self.hop_ms + self.ring_prefill_ms + self.model_lookahead_ms
                + self.resampler_delay_ms)

    def __str__(self) -> str:
        return (
            f"latency at {self.output_sample_rate} Hz, block {self.block_size} frames:\n"
            f"  device block       {self.block_ms:7.2f} ms\n"
            f"  model hop (events) {self.hop_ms:7.2f} ms\n"
            f"  ring prefill       {self.ring_prefill_ms:7.2f} ms\n"
            f"  model look-ahead   {self.model_lookahead_ms:7.2f} ms (pre-rolled at note-on)\n"
            f"  resampler delay    {self.resampler_delay_ms:7.2f} ms\n"
            f"  total (worst case) {self.total_ms:7.2f} ms"
            + ("" if self.note_on_ms is None else
               f" (note-offs, XY, presets)\n  note-on, cached attack: {self.note_on_ms:7.2f} ms (worst case: the next device block)"))


class Engine:
    """Polyphonic engine over a :class:`~nsynth_live.runtime.protocol.StreamingSynth`.

    Parameters
    ----------
    synth : StreamingSynth
        The model (``nsynth_live.runtime.sing_onnx.load_synth``).
    preset : Preset or str
        A preset, or the name of one in ``config.presets_dir``. Its corners are checked against
        ``synth.spec.instrument_names``.
    output_sample_rate : int
        Device rate in Hz (>= the model's rate).
    max_voices : int
        Voices that may sound at once (>= 1); stolen voices fade in spare slots.
    channels : int
        Output channels: 1 for the mono mix (every voice in the centre), 2 for the stereo mix (each
        voice panned by its key and the preset's ``width``), more for the stereo pair repeated
        (channels 0, 2, ... left; 1, 3, ... right).
    config : EngineConfig or None
        Tuning; None for the defaults.

    Raises
    ------
    PresetError
        Unknown preset or corner instrument not in the model.
    ValueError
        Invalid rates, voice or channel counts.

    Notes
    -----
    Only :meth:`post` may be called from other threads; :meth:`render_hop` and the rest belong to
    one thread (the inference thread or the offline loop).
    """

    def __init__(self, synth: StreamingSynth, preset, *, output_sample_rate: int = 48000,
                 max_voices: int = 16, channels: int = 2, config: EngineConfig | None = None):
        self.config = config if config is not None else EngineConfig()
        self.synth = synth
        self.spec: StreamSpec = synth.spec
        spec = self.spec
        if isinstance(max_voices, bool) or not isinstance(max_voices, int) or not 1 <= max_voices <= 256:
            raise ValueError(f"max_voices must be an int in [1, 256], got {max_voices!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 64:
            raise ValueError(f"channels must be an int in [1, 64], got {channels!r}")
        self.output_sample_rate = int(output_sample_rate)
        self.max_voices = max_voices
        self.channels = channels
        self.hop_length_samples = spec.hop_length_samples
        self.hop_seconds = spec.hop_length_samples / spec.sample_rate
        self._n_mix = 2 if channels >= 2 else 1  # the mix's channels: stereo, or the centred mono
        self._resamplers = [make_resampler(input_sample_rate=spec.sample_rate,
                                           output_sample_rate=self.output_sample_rate)
                            for _ in range(self._n_mix)]
        self._resampler = self._resamplers[0]
        self.sustain_loop = self.config.sustain_loop or SustainLoop.for_spec(spec)
        self.sustain_loop.check(spec)

        sr = spec.sample_rate
        hop = spec.hop_length_samples
        self._n = np.arange(1, hop + 1, dtype=np.float64)  # sample offsets 1..hop in a hop
        self._attack_rate = 1.0 / (self.config.attack_seconds * sr)  # per sample
        self._steal_samples = self.config.steal_fade_seconds * sr
        self._all_off_samples = self.config.all_sound_off_seconds * sr
        self._silence = 10.0 ** (self.config.silence_threshold_db / 20.0)
        self._end_guard_steps = int(math.ceil(self._steal_samples / hop)) + 1
        self._morph_hops = max(1, int(round(self.config.morph_seconds / self.hop_seconds)))

        # voice slots: max_voices playing + max_voices fading after a steal
        n_slots = 2 * max_voices
        self._n_slots = n_slots
        self._phase = np.zeros(n_slots, dtype=np.int8)
        self._key = np.full(n_slots, -1, dtype=np.int64)
        self._pitch = np.zeros(n_slots, dtype=np.int64)
        self._velocity = np.zeros(n_slots, dtype=np.float32)
        self._time = np.zeros(n_slots, dtype=np.int64)
        self._order = np.zeros(n_slots, dtype=np.int64)
        self._env = np.zeros(n_slots, dtype=np.float64)
        self._kill_rate = np.zeros(n_slots, dtype=np.float64)
        self._sounded = np.zeros(n_slots, dtype=bool)
        self._needs_preroll = np.zeros(n_slots, dtype=bool)
        self._xfade = np.full(n_slots, -1, dtype=np.int64)  # hops done in a crossfade (loop or morph), -1 none
        self._xfade_kind = np.zeros(n_slots, dtype=np.int8)  # _LOOP or _MORPH while _xfade >= 0
        self._xfade_hops = np.ones(n_slots, dtype=np.int64)  # length of the running crossfade
        self._xfade_norm = np.ones(n_slots, dtype=np.float64)  # power-normalising gain of the crossfade
        self._partner_time = np.zeros(n_slots, dtype=np.int64)
        self._has_snapshot = np.zeros(n_slots, dtype=bool)
        self._state = synth.new_state(n_slots)
        self._partner = synth.new_state(n_slots)
        self._snapshot = synth.new_state(n_slots)
        self._fresh = synth.new_state(1)
        # the morph's replays (docs/engine.md, "Morph"): a ring of each voice's last states
        self._replay_frames = self.config.morph_replay_frames
        self._replay_keys = replay_state_keys(synth)
        self._history = {k: np.zeros((n_slots, self._replay_frames) + v.shape[1:], dtype=v.dtype)
                         for k, v in self._fresh.items() if k in self._replay_keys}
        self._history_from = np.zeros(n_slots, dtype=np.int64)  # first frame whose state the ring holds
        # the loop snapshot's timbre, and the ring's state 12 frames before it, to re-render the
        # snapshot at a loop turn when the timbre moved since it was taken
        self._snapshot_base = {k: np.zeros_like(h[:, 0]) for k, h in self._history.items()}
        self._snapshot_base_ok = np.zeros(n_slots, dtype=bool)
        self._snapshot_embedding = np.zeros((n_slots, spec.embedding_dims), dtype=np.float64)
        self._morph_pending = np.zeros(n_slots, dtype=bool)  # the voice has not been replayed at the target
        self._pending_since = np.zeros(n_slots, dtype=np.int64)  # hop of the oldest unserved request
        self._morph_xfade_hops = max(1, int(round(self.config.morph_crossfade_seconds * spec.sample_rate
                                                  / spec.hop_length_samples)))
        self.morph_replays = 0  # voices replayed so far
        self._note_counter = 0
        self._sustain_down = False
        self._warned_keys: set[int] = set()
        self._events: collections.deque = collections.deque()
        self._hop_index = 0  # hops rendered: the next hop starts at model sample _hop_index * hop
        self._scheduled: list = []  # Timed note starts for later hops
        self._offset = np.zeros(n_slots, dtype=np.int64)  # samples into the hop where the voice's hops start
        self._carry = np.zeros((n_slots, hop), dtype=np.float64)  # a voice's audio for the next hop
        self._pending = np.zeros((self._n_mix, hop), dtype=np.float64)  # carries of voices freed in the last hop
        self._pan = np.ones((n_slots, self._n_mix), dtype=np.float64)  # each voice's gain per mix channel
        self._handoff = np.zeros(n_slots, dtype=bool)  # continuation of a cached attack: fade in this hop
        self._handoff_ramp = self._n / hop
        self._channel = np.zeros(n_slots, dtype=np.int64)  # MIDI channel of the voice's note-on
        self._bend = VoiceResampler(n_slots, hop)  # per-voice pitch bend (engine/pitch_bend.py)
        self.late_handoffs = 0  # cached voices that started after their hand-over sample

        self.nonfinite_hops = 0  # hops muted because the mix held NaN or inf (see _mute_nonfinite)
        self.nonfinite_voices = 0  # voices cut because their audio held NaN or inf (_silence_broken_voices)
        self._nonfinite_unreported = 0  # cut voices and muted hops not yet in a warning
        self._nonfinite_warned_at = -math.inf  # clock time (s) of the last warning
        self._clock = time.monotonic  # s; tests replace it
        self.preset = self._check_preset(preset)
        self._corners = self._corner_embeddings(self.preset)
        self._xy = self.preset.xy
        self._bus = MasterBus(hop=hop, sample_rate=sr, threshold=self.config.limiter_threshold,
                              release_seconds=self.config.limiter_release_seconds, gain_db=self.preset.gain_db)
        self._release_factor = self._release_factor_for(self.preset)
        self._morph = EmbeddingMorph(self._blend(self._xy), hops=self._morph_hops)
        self._controllers = ControllerState(self.preset.controls)
        self._expression = Expression(hop=hop, sample_rate=sr, channels=self._n_mix)

    # ------------------------------------------------------------------ public API
    def post(self, event) -> None:
        """Queue an event for the next hop. Thread-safe (a deque append), never blocks."""
        self._events.append(event)

    @property
    def sample_position(self) -> int:
        """Model-rate sample where the next hop starts (``Timed.at_sample`` counts from 0)."""
        return self._hop_index * self.hop_length_samples

    @property
    def target_embedding(self) -> np.ndarray:
        """``(embedding_dims,)`` float32: the blend the timbre is moving to (XY and preset)."""
        return self._blend(self._xy).astype(np.float32)

    @property
    def master_gain(self) -> float:
        """Preset gain times the gain rider's present gain times the gain amount (mod wheel or
        aftertouch, ``engine/expression.py``), linear: what the mix is multiplied by."""
        return self._bus.gain * self._expression.gain

    def release_per_sample(self) -> float:
        """Per-sample factor of the preset's exponential release at the model rate."""
        return release_factor_per_sample(self.preset.release_seconds, self.spec.sample_rate)

    @property
    def xy(self) -> tuple[float, float]:
        """Target timbre position (x, y) in [0, 1]."""
        return self._xy

    @property
    def active_voice_count(self) -> int:
        """Voices that count against ``max_voices`` (held, sustained or releasing)."""
        return int(np.isin(self._phase, _LOGICAL).sum())

    @property
    def sounding_slot_count(self) -> int:
        """Slots that produce audio (including voices fading after a steal)."""
        return int((self._phase != FREE).sum())

    @property
    def resampler_delay_seconds(self) -> float:
        """Group delay of the output resampler in s."""
        return self._resampler.delay_output_samples / self.output_sample_rate

    @property
    def nominal_hop_frames(self) -> float:
        """Output frames per hop on average (exact for integer ratios)."""
        return self.hop_length_samples * self.output_sample_rate / self.spec.sample_rate

    @property
    def max_hop_frames(self) -> int:
        """Upper bound of the frames one :meth:`render_hop` returns (soxr chunks vary)."""
        return int(math.ceil(self.nominal_hop_frames)) + 64

    def latency_report(self, block_size: int, *, prefill_hops: int = 2, cached_attacks: bool = False) -> LatencyReport:
        """Expected latency for a device block of ``block_size`` frames (see :class:`LatencyReport`)."""
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size must be an int >= 1 frames, got {block_size!r}")
        block_ms = 1000.0 * block_size / self.output_sample_rate
        hop_ms = 1000.0 * self.hop_seconds
        return LatencyReport(
            output_sample_rate=self.output_sample_rate,
            block_size=block_size,
            block_ms=block_ms,
            hop_ms=hop_ms,
            ring_prefill_ms=prefill_hops * hop_ms + block_ms,
            model_lookahead_ms=0.0,
            resampler_delay_ms=1000.0 * self.resampler_delay_seconds,
            note_on_ms=block_ms if cached_attacks else None,
        )

    def render_hop(self) -> np.ndarray:
        """Render the next hop.

        Returns
        -------
        numpy.ndarray
            ``(frames, channels)`` float32 at ``output_sample_rate``, peak <= 1. ``frames`` is
            ``hop * output_rate / model_rate`` exactly for integer ratios (768 at 48 kHz), and
            varies by a few frames per hop for soxr ratios (44.1 kHz).
        """
        self._drain_events()
        embedding = self._advance_morph()
        self._preroll(embedding)
        self._replay_morphs()
        mix = self._step_voices(embedding)
        mix = self._mute_nonfinite(mix)
        mix = self._expression.process(mix, **self._controllers.amounts)
        mix = self._master(mix)
        resampled = np.stack([r.process(row) for r, row in zip(self._resamplers, mix)], axis=1)
        resampled = self._soft_clip(resampled)
        self._hop_index += 1
        if self.channels == self._n_mix:
            return resampled.astype(np.float32, copy=False)
        return resampled[:, np.arange(self.channels) % self._n_mix].astype(np.float32, copy=False)

    # ------------------------------------------------------------------ presets and timbre
    def _check_preset(self, preset) -> Preset:
        if isinstance(preset, str):
            preset = load_preset(preset, presets_dir=self.config.presets_dir)
        if not isinstance(preset, Preset):
            raise PresetError(f"preset must be a Preset or a preset name, got {preset!r}")
        if self.config.corner_names is not None:
            preset = dataclasses.replace(preset, corners=self.config.corner_names)
        check_preset_instruments(preset, self.spec.instrument_names)
        return preset

    def _corner_embeddings(self, preset: Preset) -> np.ndarray:
        rows = [np.asarray(self.synth.instrument_embedding(n), dtype=np.float64).reshape(-1)
                for n in preset.corners]
        corners = np.stack(rows)
        if corners.shape != (4, self.spec.embedding_dims):
            raise ValueError(f"instrument embeddings have shape {corners.shape}, expected "
                             f"(4, {self.spec.embedding_dims})")
        return corners

    def _release_factor_for(self, preset: Preset) -> np.ndarray:
        # exponential release: -60 dB after release_seconds; factor ** n for n = 1..hop
        return release_factor_per_sample(preset.release_seconds, self.spec.sample_rate) ** self._n

    def _blend(self, xy) -> np.ndarray:
        """Bilinear blend of the 4 corners at (x, y): weights of (0,0), (1,0), (0,1), (1,1)."""
        return bilinear_corner_weights(xy) @ self._corners

    def _retarget(self) -> None:
        target = self._blend(self._xy)
        if np.array_equal(target, self._morph.target):  # a controller resending its value
            return
        self._morph.retarget(target)
        fresh = (self._phase != FREE) & (self._phase != KILLING) & ~self._morph_pending
        self._pending_since[fresh] = self._hop_index
        self._morph_pending[(self._phase != FREE) & (self._phase != KILLING)] = True

    def _advance_morph(self) -> np.ndarray:
        return self._morph.advance()

    def _controlled(self, changed: dict) -> None:
        """Apply what a controller changed (:meth:`ControllerState.control_change`): the XY
        target moves; bends and amounts are read from the controller state at each hop."""
        if "x" in changed or "y" in changed:
            self._xy = (float(changed.get("x", self._xy[0])), float(changed.get("y", self._xy[1])))
            self._retarget()

    def _select_preset(self, name: str) -> None:
        try:
            preset = self._check_preset(name)
        except PresetError as error:
            logger.warning("preset change refused: %s", error)
            return
        self.preset = preset
        self._corners = self._corner_embeddings(preset)
        self._bus.set_gain_db(preset.gain_db)
        self._release_factor = self._release_factor_for(preset)
        self._controllers.set_controls(preset.controls)
        self._retarget()

    # ------------------------------------------------------------------ events
    def _drain_events(self) -> None:
        hop_start = self.sample_position
        hop_end = hop_start + self.hop_length_samples
        if self._scheduled:  # note starts posted earlier for this hop
            due = [t for t in self._scheduled if t.at_sample < hop_end]
            if due:
                self._scheduled = [t for t in self._scheduled if t.at_sample >= hop_end]
                for timed in sorted(due, key=lambda t: t.at_sample):
                    self._apply_safely(timed.event, timed.at_sample, hop_start)
        while True:
            try:
                event = self._events.popleft()
            except IndexError:
                return
            if isinstance(event, EventBatch):  # the OSC server's events of this hop (engine.osc.OscOutbox)
                self._events.extendleft(reversed(event.take()))
                continue
            at_sample = None
            if isinstance(event, Timed):
                at_sample = event.at_sample
                if at_sample >= hop_end and isinstance(event.event, (NoteOn, CachedNoteOn)):
                    if isinstance(event.event, CachedNoteOn):
                        self._retrigger(event.event.key)
                    self._scheduled.append(event)
                    continue
                event = event.event
            self._apply_safely(event, at_sample, hop_start)

    def _apply_safely(self, event, at_sample, hop_start) -> None:
        try:
            self._apply(event, at_sample, hop_start)
        except Exception as error:  # one bad event must not stop the instrument
            logger.warning("event %r ignored: %r", event, error)

    def _retrigger(self, key: int) -> None:
        """A cached note-on of ``key`` arrived: the key's earlier scheduled start is dropped and its
        sounding voice fades now (the callback faded the old attack), not at the new hand-over."""
        self._scheduled = [t for t in self._scheduled
                           if not (isinstance(t.event, CachedNoteOn) and t.event.key == key)]
        for slot in np.flatnonzero(np.isin(self._phase, _LOGICAL) & (self._key == key) & self._sounded):
            self._kill(slot, self._steal_samples)

    def _release_scheduled(self, key: int | None, release_sample: int | None) -> bool:
        """Mark scheduled cached starts of ``key`` (every key if None) as released at
        ``release_sample`` (None: at their own start). Returns whether one was found."""
        found = False
        for i, timed in enumerate(self._scheduled):
            event = timed.event
            if isinstance(event, CachedNoteOn) and (key is None or event.key == key) and event.release_sample is None:
                sample = timed.at_sample if release_sample is None else min(release_sample, timed.at_sample)
                self._scheduled[i] = Timed(dataclasses.replace(event, release_sample=sample), timed.at_sample)
                found = True
        return found

    def _apply(self, event, at_sample: int | None = None, hop_start: int = 0) -> None:
        offset = 0 if at_sample is None else min(max(at_sample - hop_start, 0), self.hop_length_samples - 1)
        if isinstance(event, NoteOn):
            self._note_on(event.pitch_midi, event.velocity, offset=offset, channel=event.channel)
        elif isinstance(event, CachedNoteOn):
            if at_sample is None or at_sample < hop_start:
                self.late_handoffs += 1
            self._note_on(event.key, event.velocity, offset=offset, cached=event,
                          at_sample=hop_start + offset, channel=event.channel)
        elif isinstance(event, NoteOff):
            self._note_off(event.pitch_midi)
            # a scheduled start is marked even with the pedal down: it then starts sustained
            self._release_scheduled(event.pitch_midi, None)
        elif isinstance(event, ReleaseAttack):
            if not self._release_scheduled(event.key, at_sample):
                self._note_off(event.key)
        elif isinstance(event, ControlChange):
            if event.controller == CC_SUSTAIN_PEDAL:
                self._set_sustain(event.value >= SUSTAIN_ON_THRESHOLD)
                return
            if event.controller == CC_RESET_ALL_CONTROLLERS:
                self._set_sustain(False)
            self._controlled(self._controllers.control_change(event.controller, event.value, event.channel))
        elif isinstance(event, PitchBend):
            self._controllers.pitch_bend(event.value, event.channel)
        elif isinstance(event, ChannelPressure):
            self._controlled(self._controllers.channel_pressure(event.value, event.channel))
        elif isinstance(event, AllNotesOff):
            for slot in np.flatnonzero(self._phase == HELD):
                self._release_slot(slot)
            self._release_scheduled(None, None)
        elif isinstance(event, AllSoundOff):
            self._scheduled = [t for t in self._scheduled if not isinstance(t.event, CachedNoteOn)]
            for slot in np.flatnonzero(self._phase != FREE):
                if not self._sounded[slot]:
                    self._free(slot)
                else:
                    self._kill(slot, self._all_off_samples)
        elif isinstance(event, SetXY):
            self._xy = (float(event.x), float(event.y))
            self._retarget()
        elif isinstance(event, SetX):
            self._xy = (float(event.x), self._xy[1])
            self._retarget()
        elif isinstance(event, SetY):
            self._xy = (self._xy[0], float(event.y))
            self._retarget()
        elif isinstance(event, SelectPreset):
            self._select_preset(event.preset or event.name)
        elif isinstance(event, ProgramChange):
            names = list_presets(presets_dir=self.config.presets_dir)
            if event.program < len(names):
                self._select_preset(names[event.program])
            else:
                logger.warning("program change %d ignored: only %d presets (%s)", event.program,
                               len(names), ", ".join(names))
        else:
            logger.warning("unknown event %r ignored", event)

    def model_pitch(self, key: int) -> int | None:
        """The model pitch a MIDI key plays (None: ignored), by ``config.out_of_range``; pure
        (no logging), so the audio callback may call it."""
        return model_pitch_for_key(key, self.spec.pitch_min_midi, self.spec.pitch_max_midi,
                                   self.config.out_of_range)

    def _model_pitch(self, key: int) -> int | None:
        low, high = self.spec.pitch_min_midi, self.spec.pitch_max_midi
        pitch = self.model_pitch(key)
        if pitch == key:
            return key
        if pitch is None:
            if key not in self._warned_keys:
                self._warned_keys.add(key)
                logger.warning("note %d outside the model's pitch range [%d, %d]: ignored", key,
                               low, high)
            return None
        if key not in self._warned_keys:
            self._warned_keys.add(key)
            logger.warning("note %d outside the model's pitch range [%d, %d]: played as %d", key,
                           low, high, pitch)
        return pitch

    def _note_on(self, key: int, velocity, *, offset: int = 0, cached: CachedNoteOn | None = None,
                 at_sample: int = 0, channel: int = 0) -> None:
        pitch = self._model_pitch(key)
        if cached is not None:
            pitch = cached.pitch_midi
        if pitch is None:
            return
        for slot in np.flatnonzero(np.isin(self._phase, _LOGICAL) & (self._key == key)):
            if self._sounded[slot]:
                self._kill(slot, self._steal_samples)
            else:  # started in this hop, not heard yet: take it over
                self._start(slot, key, pitch, velocity, offset, cached, at_sample, channel)
                return
        logical = np.flatnonzero(np.isin(self._phase, _LOGICAL))
        if logical.size >= self.max_voices:
            victim = steal_victim(self._phase, self._sounded, self._order, logical)
            if not self._sounded[victim]:
                self._start(victim, key, pitch, velocity, offset, cached, at_sample, channel)
                return
            self._kill(victim, self._steal_samples)
        slot = free_slot(self._phase, self._env)  # (every spare slot fading: the quietest is cut)
        self._start(slot, key, pitch, velocity, offset, cached, at_sample, channel)

    def _start(self, slot: int, key: int, pitch: int, velocity, offset: int = 0,
               cached: CachedNoteOn | None = None, at_sample: int = 0, channel: int = 0) -> None:
        self._flush_carry(slot)
        self._channel[slot] = channel
        if self._n_mix == 2:
            self._pan[slot] = pan_gains(key_pan(key, self.preset.width))
        self._bend.start(slot, self._bend_ratio(channel))
        self._offset[slot] = offset
        self._handoff[slot] = False
        self._note_counter += 1
        self._phase[slot] = HELD
        self._key[slot] = key
        self._pitch[slot] = pitch
        self._velocity[slot] = velocity
        self._time[slot] = 0
        self._order[slot] = self._note_counter
        self._env[slot] = 0.0
        self._sounded[slot] = False
        self._needs_preroll[slot] = True
        self._xfade[slot] = -1
        self._has_snapshot[slot] = False
        self._history_from[slot] = self.spec.preroll_steps
        target = self._morph.target
        self._morph_pending[slot] = not np.array_equal(self._morph.embedding, target)
        self._pending_since[slot] = self._hop_index
        if cached is not None:  # continue from the cached state; the callback played the attack
            row = cached.row
            for k in self._state:
                self._state[k][slot] = cached.cache.state[k][row]
            self._time[slot] = cached.cache.time_index
            self._history_from[slot] = cached.cache.time_index
            self._morph_pending[slot] = not np.allclose(cached.cache.embedding, target, atol=1e-6)
            self._needs_preroll[slot] = False
            self._sounded[slot] = True
            self._handoff[slot] = True
            if cached.release_sample is None:
                self._env[slot] = 1.0
            elif cached.release_sample < at_sample:  # the callback released the attack: go on decaying
                self._phase[slot] = RELEASED
                self._env[slot] = self.release_per_sample() ** (at_sample - cached.release_sample)
            else:  # the key went up before the hand-over: released from here, or held by the pedal
                self._phase[slot] = SUSTAINED if self._sustain_down else RELEASED
                self._env[slot] = 1.0

    def _flush_carry(self, slot: int) -> None:
        """Move what a voice still owes the next hop into the shared pending buffer."""
        o = int(self._offset[slot])
        if o:
            self._pending[:, :o] += self._pan[slot][:, None] * self._carry[slot, :o]
            self._carry[slot, :o] = 0.0
        self._offset[slot] = 0

    def _free(self, slot: int) -> None:
        self._flush_carry(slot)
        self._morph_pending[slot] = False
        self._phase[slot] = FREE
        self._key[slot] = -1
        self._env[slot] = 0.0
        self._needs_preroll[slot] = False
        self._xfade[slot] = -1

    def _kill(self, slot: int, fade_samples: float) -> None:
        self._phase[slot] = KILLING
        self._kill_rate[slot] = max(self._env[slot], 1e-6) / fade_samples

    def _release_slot(self, slot: int) -> None:
        self._phase[slot] = SUSTAINED if self._sustain_down else RELEASED

    def _note_off(self, key: int) -> None:
        for slot in np.flatnonzero((self._phase == HELD) & (self._key == key)):
            self._release_slot(slot)

    def _set_sustain(self, down: bool) -> None:
        self._sustain_down = down
        if not down:
            self._phase[self._phase == SUSTAINED] = RELEASED

    # ------------------------------------------------------------------ model
    def _gather(self, state, slots) -> dict:
        return {k: v[slots] for k, v in state.items()}

    def _scatter(self, state, slots, values, rows=slice(None)) -> None:
        for k, v in values.items():
            state[k][slots] = v[rows]

    def _preroll(self, embedding: np.ndarray) -> None:
        slots = np.flatnonzero(self._needs_preroll)
        if slots.size == 0:
            return
        for k, v in self._fresh.items():
            self._state[k][slots] = v[0]
        emb = np.repeat(embedding[None, :], slots.size, axis=0)
        state = preroll(self.synth, instrument_embeddings=emb, pitch_midi=self._pitch[slots],
                        velocity=self._velocity[slots], state=self._gather(self._state, slots))
        self._scatter(self._state, slots, state)
        self._time[slots] = self.spec.preroll_steps
        self._needs_preroll[slots] = False

    def _bend_ratio(self, channel):
        """Read rate(s) of the pitch bend of ``channel`` (an int or an array of them)."""
        return 2.0 ** (self._controllers.bend_semitones[channel] / 12.0)

    def _model_step(self, slots: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """ONE batched model step for ``slots`` (sorted) and the second streams among them (a sustain
        loop's replayed stream, a morph's replayed stream); returns each slot's ``(len(slots), hop)``
        model audio, crossfades applied (``docs/engine.md``)."""
        hop = self.hop_length_samples
        loop = self.sustain_loop
        crossfading = self._xfade[slots] >= 0
        kind = self._xfade_kind[slots]
        # snapshot the state a held voice has before its loop-start step (a morph's new stream, when
        # the voice is crossfading into one: it is the voice from the crossfade's end)
        at_start = self._time[slots] == loop.loop_start_index
        ring = self._replay_frames
        for source, chosen, timbre in ((self._state, at_start & ~crossfading, embedding),
                                       (self._partner, at_start & crossfading & (kind == _MORPH), self._morph.target)):
            snap = slots[chosen]
            if snap.size:
                self._scatter(self._snapshot, snap, self._gather(source, snap))
                self._has_snapshot[snap] = True
                self._snapshot_embedding[snap] = timbre
                for k, history in self._history.items():  # (the ring slot this step overwrites)
                    self._snapshot_base[k][snap] = history[snap, loop.loop_start_index % ring]
                self._snapshot_base_ok[snap] = self._history_from[snap] <= loop.loop_start_index - ring
        partners = slots[crossfading]
        # the replay ring: the state before this frame (the second stream's, while there is one)
        plain = slots[~crossfading]
        for k, history in self._history.items():
            history[plain, self._time[plain] % ring] = self._state[k][plain]
            history[partners, self._partner_time[partners] % ring] = self._partner[k][partners]
        n_main = slots.size
        main = self._gather(self._state, slots)
        emb = np.repeat(embedding[None, :], n_main + partners.size, axis=0)
        if partners.size:
            other = self._gather(self._partner, partners)
            state = {k: np.concatenate([main[k], other[k]]) for k in main}
            rows = np.concatenate([slots, partners])
            times = np.concatenate([self._time[slots], self._partner_time[partners]])
            emb[n_main:][self._xfade_kind[partners] == _MORPH] = self._morph.target.astype(np.float32)
        else:
            state, rows, times = main, slots, self._time[slots]
        audio, new_state = self.synth.step(emb, self._pitch[rows], self._velocity[rows],
                                           times.astype(np.int64), state)
        audio = np.asarray(audio, dtype=np.float64)
        self._scatter(self._state, slots, new_state, slice(0, n_main))
        self._time[slots] += 1
        if partners.size:
            self._scatter(self._partner, partners, new_state, slice(n_main, None))
            self._partner_time[partners] += 1

        self._silence_broken_voices(audio, slots, partners)
        voice_audio = audio[:n_main]
        for row, slot in enumerate(partners):
            hops = int(self._xfade_hops[slot])
            u = (self._xfade[slot] * hop + self._n) / (hops * hop)  # 0 < u <= 1 across the crossfade
            i = int(np.searchsorted(slots, slot))
            outgoing, incoming = voice_audio[i], audio[n_main + row]
            # the normalising gain measured mid-hop; at the last hop it ramps to 1 (the incoming
            # stream alone), so there is no gain step when the crossfade ends
            norm = 1.0 if self._xfade[slot] == hops - 1 else crossfade_norm(outgoing, incoming, u[hop // 2])
            if self._xfade[slot] == 0:
                self._xfade_norm[slot] = 1.0
            k = self._xfade_norm[slot] + (norm - self._xfade_norm[slot]) * self._n / hop
            self._xfade_norm[slot] = norm
            voice_audio[i] = k * ((1.0 - u) * outgoing + u * incoming)
            self._xfade[slot] += 1
            if self._xfade[slot] >= hops:  # the second stream takes over
                for key in self._state:
                    self._state[key][slot] = self._partner[key][slot]
                if self._xfade_kind[slot] == _LOOP:  # the ring holds the new stream's frames from the loop start
                    self._history_from[slot] = self._partner_time[slot] - hops
                self._time[slot] = self._partner_time[slot]
                self._xfade[slot] = -1
        turning = []
        for slot in slots:
            phase = self._phase[slot]
            if phase not in (HELD, SUSTAINED):
                continue
            if loop.mode == "hold" and self._time[slot] > loop.loop_end_index:
                self._time[slot] = loop.loop_end_index  # hold the time index while held
            # start a loop crossfade for a voice still held at the loop end
            if (loop.mode == "crossfade" and self._xfade[slot] < 0
                    and self._time[slot] == loop.loop_end_index and self._has_snapshot[slot]):
                for k in self._partner:
                    self._partner[k][slot] = self._snapshot[k][slot]
                self._partner_time[slot] = loop.loop_start_index
                self._start_crossfade(slot, _LOOP, loop.crossfade_hops)
                turning.append(slot)
        if turning and self.config.morph_mode == "replay":
            self._refresh_loop_partners(np.asarray(turning, dtype=np.int64))
        return voice_audio

    def _refresh_loop_partners(self, slots: np.ndarray) -> None:
        """Loop turns whose snapshot was taken at another timbre than the target: the replayed
        stream restarts from the snapshot re-rendered at the target (its last 12 frames, from the
        ring state kept with the snapshot), so a held note does not fall back to its old timbre
        once per loop (``docs/engine.md``, "Morph")."""
        target = self._morph.target
        stale = slots[self._snapshot_base_ok[slots]
                      & ~np.all(np.isclose(self._snapshot_embedding[slots], target[None], atol=1e-6), axis=1)]
        if stale.size == 0:
            return
        frames = self._replay_frames
        first = self.sustain_loop.loop_start_index - frames
        time_index = np.tile(np.arange(first, first + frames, dtype=np.int64), (stale.size, 1))
        begin = {k: v[stale] for k, v in self._snapshot_base.items()}
        state = replay(self.synth, np.repeat(target.astype(np.float32)[None], stale.size, axis=0),
                       self._pitch[stale], self._velocity[stale], time_index, begin)
        self._scatter(self._partner, stale, state)
        self._morph_pending[stale] = False  # the loop's crossfade carries the voice to the target
        self.morph_replays += int(stale.size)

    def _steps_per_hop(self, slot: int) -> int:
        """Model steps a voice may take in one hop at its bend rate (1 unbent)."""
        ratio = float(self._bend.ratio[slot])
        return 1 if ratio <= 1.0 else int(math.ceil(ratio)) + 1

    def _start_crossfade(self, slot: int, kind: int, hops: int) -> None:
        self._xfade[slot] = 0
        self._xfade_kind[slot] = kind
        self._xfade_hops[slot] = hops

    def _replay_morphs(self) -> None:
        """Serve up to ``morph_replays_per_hop`` voices waiting for the morph's replay (oldest request
        first): re-render their last frames with the target embedding into their second stream and
        start the crossfade into it (``docs/engine.md``, "Morph")."""
        if self.config.morph_mode != "replay" or not self._morph_pending.any():
            return
        loop = self.sustain_loop
        time = self._time
        waiting = self._morph_pending & (self._phase != FREE) & (self._phase != KILLING) & (self._xfade < 0)
        waiting &= ~self._needs_preroll
        if loop.mode == "crossfade":  # a morph's crossfade must end before the loop's can start
            near_loop_end = (time >= loop.loop_end_index - self._morph_xfade_hops - 1) & (time <= loop.loop_end_index)
            waiting &= ~(near_loop_end & np.isin(self._phase, (HELD, SUSTAINED)))
        # a morph's crossfade must end before the end-of-table fade
        ratio = self._bend.ratio
        steps = np.where(ratio <= 1.0, 1, np.ceil(ratio) + 1)
        waiting &= time + (self._morph_xfade_hops + self._end_guard_steps) * steps < self.spec.time_steps
        from_start = time <= self.config.morph_from_start_frames
        frames = np.where(from_start, time, np.minimum(self._replay_frames, time - self._history_from))
        waiting &= from_start | (frames >= REPLAY_MIN_FRAMES)
        slots = np.flatnonzero(waiting)
        if slots.size == 0:
            return
        order = np.lexsort((slots, self._pending_since[slots]))
        slots = np.sort(slots[order[: self.config.morph_replays_per_hop]])
        target = self._morph.target.astype(np.float32)
        for start_fresh in (True, False):
            for count in np.unique(frames[slots[from_start[slots] == start_fresh]]):
                group = slots[(from_start[slots] == start_fresh) & (frames[slots] == count)]
                first = time[group] - count
                if start_fresh:
                    begin = {k: np.repeat(v, group.size, axis=0) for k, v in self._fresh.items()}
                else:
                    begin = {k: h[group, first % self._replay_frames] for k, h in self._history.items()}
                time_index = first[:, None] + np.arange(count, dtype=np.int64)[None, :]
                state = replay(self.synth, np.repeat(target[None], group.size, axis=0), self._pitch[group],
                               self._velocity[group], time_index, begin)
                self._scatter(self._partner, group, state)
                self._partner_time[group] = time[group]
                for slot in group:
                    self._start_crossfade(slot, _MORPH, self._morph_xfade_hops)
        self._morph_pending[slots] = False
        self.morph_replays += int(slots.size)

    def _step_voices(self, embedding: np.ndarray) -> np.ndarray:
        hop = self.hop_length_samples
        mix = self._pending.copy()  # the tails of voices freed in the last hop
        self._pending[:] = 0.0
        active = np.flatnonzero(self._phase != FREE)
        if active.size == 0:
            return mix
        # each voice reads its model stream at its channel's bend rate (engine/pitch_bend.py): one
        # batched step for every voice that needs more audio, again while a voice bent up still does
        positions = self._bend.plan(active, self._bend_ratio(self._channel[active]))
        for _ in range(int(np.ceil(MAX_RATIO)) + 2):
            lacking = active[self._bend.lacking(active, positions)]
            if lacking.size == 0:
                break
            # a voice bent up past the end of the model's time table (its fade did not finish in
            # time) reads silence and is cut; no model step ever sees time_index >= time_steps
            ended = self._time[lacking] >= self.spec.time_steps
            if ended.any():
                for slot in lacking[ended]:
                    self._env[slot] = 0.0
                    self._kill(slot, self._steal_samples)
                self._bend.append(lacking[ended], np.zeros((int(ended.sum()), hop)))
                lacking = lacking[~ended]
                if lacking.size == 0:
                    continue
            self._bend.append(lacking, self._model_step(lacking, embedding))
        voice_audio = self._bend.read(active, positions)

        for i, slot in enumerate(active):
            phase = self._phase[slot]
            env0 = self._env[slot]
            env = hop_envelope(phase, env0, sounded=bool(self._sounded[slot]), attack_rate=self._attack_rate,
                               release_factor=self._release_factor, kill_rate=self._kill_rate[slot], n=self._n)
            y = env * voice_audio[i]
            if self._handoff[slot]:  # a cached attack's continuation fades in as the attack fades out
                y = y * self._handoff_ramp
                self._handoff[slot] = False
            o = int(self._offset[slot])
            pan = self._pan[slot][:, None]
            if o == 0:
                mix += pan * y
            else:  # the voice's hops start o samples into the engine's
                mix[:, :o] += pan * self._carry[slot, :o]
                mix[:, o:] += pan * y[:hop - o]
                self._carry[slot, :o] = y[hop - o:]
            self._env[slot] = env[-1]
            self._sounded[slot] = True
            if (phase == RELEASED and env[-1] < self._silence) or (phase == KILLING and env[-1] <= 0.0):
                self._free(slot)
                continue
            # a voice about to run off the time table fades out (a voice bent up takes more steps per hop)
            if (phase != KILLING and self._xfade[slot] < 0
                    and self._time[slot] >= self.spec.time_steps - self._end_guard_steps * self._steps_per_hop(slot)):
                self._kill(slot, self._steal_samples)
        return mix

    def _silence_broken_voices(self, audio: np.ndarray, active: np.ndarray, partners: np.ndarray) -> None:
        """Zero the rows of ``audio`` that hold NaN or inf and end their voices at once (in place).

        ``audio`` rows: the ``active`` voices, then the loop ``partners``. A voice whose model state
        diverged would otherwise keep poisoning the mix (and the hop guard below would mute every
        other voice with it) until it was freed; it is cut here without a fade (its audio is not
        usable) and counted in ``nonfinite_voices``. Its slot gets a fresh state at the next note.
        """
        finite = np.isfinite(audio).all(axis=1)
        if finite.all():
            return
        audio[~finite] = 0.0
        rows = np.flatnonzero(~finite)
        slots = np.concatenate([active, partners])[rows]
        for slot in np.unique(slots):
            self._env[slot] = 0.0
            self._phase[slot] = KILLING  # freed in this hop's envelope pass (its envelope is 0)
            self._kill_rate[slot] = 1.0
        self.nonfinite_voices += int(np.unique(slots).size)
        self._report_nonfinite(int(np.unique(slots).size))

    def _mute_nonfinite(self, mix: np.ndarray) -> np.ndarray:
        """Silence for a hop whose mix holds NaN or inf; ``(channels, hop)`` float64 -> same.

        A broken model (corrupt weights the load check missed, a state that diverged) would
        otherwise send NaN to the device and the recording, and an inf peak would drive the gain
        rider to 0 (NaN from inf x 0, then silence for its release time); the resampler's filter
        would carry either into the next hop. The whole hop is muted (its finite samples are as
        suspect) without a ramp, counted in ``nonfinite_hops`` and reported by a warning at most
        every ``NONFINITE_WARNING_INTERVAL_SECONDS``. A voice whose state went NaN keeps muting the
        mix until it is freed.
        """
        if np.isfinite(mix).all():
            return mix
        self.nonfinite_hops += 1
        self._report_nonfinite(1)
        return np.zeros_like(mix)

    def _report_nonfinite(self, count: int) -> None:
        """Log NaN / inf events (cut voices, muted hops) at most every ``NONFINITE_WARNING_INTERVAL_SECONDS``."""
        self._nonfinite_unreported += count
        now = self._clock()
        if now - self._nonfinite_warned_at >= NONFINITE_WARNING_INTERVAL_SECONDS:
            logger.warning(
                "NaN / inf model output: %d since the last warning (in all %d voice(s) cut, %d hop(s) muted); "
                "the model file may be corrupt (it is checked at load) or a voice's state diverged",
                self._nonfinite_unreported, self.nonfinite_voices, self.nonfinite_hops)
            self._nonfinite_warned_at = now
            self._nonfinite_unreported = 0

    def _master(self, mix: np.ndarray) -> np.ndarray:
        """Master gain ramp and per-hop gain rider (one gain for all channels); ``(channels, hop)``
        float64 -> same (:class:`MasterBus`)."""
        return self._bus.process(mix)

    def _soft_clip(self, x: np.ndarray) -> np.ndarray:
        """Identity below the knee, tanh above it, never beyond 1 (applied at the output rate,
        after the resampler, whose ringing may overshoot the gain rider's peak)."""
        return soft_clip(x, self.config.limiter_knee)
