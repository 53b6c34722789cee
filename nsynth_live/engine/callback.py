"""The audio callback's side of the live instrument: ring read, cached attacks, note decisions.

:class:`CallbackSide` is what runs at the device's deadline. It owns no model and no engine: it
reads the ring the inference thread fills, plays note-ons from the attack cache in the block it
runs, and sends the engine the events it must act on (``to_engine``). It talks to the producer
(:class:`nsynth_live.engine.realtime.RealtimeRunner`) only through plain arrays:

* ``ring`` ``(capacity_frames, channels)`` float32, written by the producer;
* ``counters`` int64 (``C_*`` indices): the producer's write position, the callback's read position
  and the callback's own counts;
* ``scalars`` float64 (``S_*`` indices): the master gain, the preset's release time and stereo width, refreshed
  by the producer every hop;

so the same object runs in the instrument's process (tests, ``--audio-in-process``) or in the
separate audio process (:mod:`nsynth_live.io.audio_process`), where those arrays live in shared
memory and no other Python thread competes with the callback for the GIL.

Callback rules (docs/running.md): fill the whole output every time, never block, log, touch a file
or run the model; catch every exception and output silence.

The ring's counters are single-writer: the producer publishes ``C_WRITE`` after the samples are in
place, the callback ``C_READ`` after it copied them (aligned 8-byte stores, in program order on
x86-64).
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np

from nsynth_live.engine.master_bus import soft_clip
from nsynth_live.engine.voices import key_pan, pan_gains, release_factor_per_sample
from nsynth_live.engine.events import (
    CC_RESET_ALL_CONTROLLERS,
    CC_SUSTAIN_PEDAL,
    PITCH_BEND_CENTER,
    SUSTAIN_ON_THRESHOLD,
    AllNotesOff,
    AllSoundOff,
    CachedNoteOn,
    ControlChange,
    EventBatch,
    NoteOff,
    NoteOn,
    PitchBend,
    ReleaseAttack,
    Timed,
)

# counters (int64)
BENT_TOLERANCE = 4  # 14-bit bend steps from the centre that still count as unbent for the attack cache
C_WRITE, C_READ, C_XRUNS, C_UNDERRUNS, C_ERRORS, C_CACHED, C_UNCACHED, C_MIDI_MESSAGES, C_MIDI_EVENTS = range(9)
N_COUNTERS = 12
# scalars (float64)
S_MASTER_GAIN, S_RELEASE_SECONDS, S_WIDTH = range(3)
N_SCALARS = 4


def model_pitch_for_key(key: int, low: int, high: int, out_of_range: str) -> int | None:
    """The model pitch a MIDI key plays: itself inside ``[low, high]``; outside, transposed by
    octaves into range (``out_of_range="transpose"``) or None (``"ignore"``)."""
    if low <= key <= high:
        return key
    if out_of_range == "ignore":
        return None
    pitch = key
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return min(max(pitch, low), high)


@dataclass(frozen=True)
class CallbackConfig:
    """What the callback side needs to know of the engine and the ring (picklable).

    Attributes
    ----------
    capacity_frames, channels : int
        The ring's shape.
    output_sample_rate : int
        Hz.
    ratio : float
        Device rate / model rate.
    sample_origin : int
        Model sample of ring frame 0.
    nominal_hop_frames : float
        Device frames per model hop.
    max_hop_frames : int
        Most frames one hop may write.
    resampler_delay_frames : float
        The engine's resampler delay.
    kill_frames : float
        Fade of a re-triggered or all-sound-off attack (the engine's steal fade).
    limiter_knee : float
        The engine's soft-clip knee.
    pitch_min_midi, pitch_max_midi : int
        The model's pitch range.
    out_of_range : str
        The engine's policy for keys outside it.
    """

    capacity_frames: int
    channels: int
    output_sample_rate: int
    ratio: float
    sample_origin: int
    nominal_hop_frames: float
    max_hop_frames: int
    resampler_delay_frames: float
    kill_frames: float
    limiter_knee: float
    pitch_min_midi: int
    pitch_max_midi: int
    out_of_range: str

    @classmethod
    def for_engine(cls, engine, *, capacity_frames: int) -> "CallbackConfig":
        """The configuration for ``engine`` (an :class:`~nsynth_live.engine.engine.Engine`)."""
        return cls(
            capacity_frames=int(capacity_frames), channels=int(engine.channels),
            output_sample_rate=int(engine.output_sample_rate),
            ratio=engine.output_sample_rate / engine.spec.sample_rate,
            sample_origin=int(engine.sample_position), nominal_hop_frames=float(engine.nominal_hop_frames),
            max_hop_frames=int(engine.max_hop_frames),
            resampler_delay_frames=float(engine.resampler_delay_seconds * engine.output_sample_rate),
            kill_frames=float(engine.config.steal_fade_seconds * engine.output_sample_rate),
            limiter_knee=float(engine.config.limiter_knee), pitch_min_midi=int(engine.spec.pitch_min_midi),
            pitch_max_midi=int(engine.spec.pitch_max_midi), out_of_range=str(engine.config.out_of_range),
        )


class CallbackSide:
    """Reads the ring and plays cached attacks at the device's deadline.

    Parameters
    ----------
    config : CallbackConfig
    ring : (capacity_frames, channels) float32 array
    counters : (N_COUNTERS,) int64 array
    scalars : (N_SCALARS,) float64 array
    to_engine : callable
        ``to_engine(event)``: hands the producer an engine event (never blocks).
    event_source : callable, optional
        ``event_source() -> iterable of events`` for this block, taken after :meth:`post`'s queue
        (the audio process's queue from the instrument).

    Attributes
    ----------
    cache : AttackCache or None
        The cache note-ons play from; replaced by the producer (one reference assignment).
    """

    def __init__(self, config: CallbackConfig, *, ring: np.ndarray, counters: np.ndarray, scalars: np.ndarray,
                 to_engine, event_source=None) -> None:
        self.config = config
        self.ring = ring
        self.counters = counters
        self.scalars = scalars
        self.to_engine = to_engine
        self.cache = None
        self._inbox: collections.deque = collections.deque()
        self._event_source = event_source
        # playing attacks: [cache.attack, row, start_frame, gains, key, handoff_frame, release_from, kill_from];
        # gains: (mix channels,) float32, the master gain times the key's pan (engine.voices.pan_gains)
        self._attacks: list = []
        self._attacks_by_key: dict = {}  # key -> its records in _attacks
        self._block_ramp = np.arange(config.capacity_frames, dtype=np.int64)
        self._n_mix = 2 if config.channels >= 2 else 1  # the engine's mix: stereo, or mono
        self._mix = np.zeros((self._n_mix, config.capacity_frames), dtype=np.float32)
        self._channel_map = np.arange(config.channels) % self._n_mix
        self._pan_width = None  # the width self._pan_table was made for
        self._pan_table = np.ones((128, self._n_mix), dtype=np.float32)  # each key's gains, made off the per-note path
        self._sustain_down = False
        self._bent = np.zeros(16, dtype=bool)  # channels whose pitch bend is off centre

    # ------------------------------------------------------------------ producer-facing
    def post(self, event, offset: int = 0) -> None:
        """Queue an event for the next callback (thread-safe deque append, never blocks).

        ``offset``: frames into that callback's block where it happened (a JACK MIDI event's own
        offset when the audio and MIDI share a JACK client): a note-on then starts there.
        """
        self._inbox.append((event, offset))

    def tables_in_use(self) -> set:
        """``id()`` of the attack tables that playing attacks still read (a snapshot)."""
        return {id(attack[0]) for attack in list(self._attacks)}

    # ------------------------------------------------------------------ the callback
    def audio_callback(self, outdata, frames, time_info, status) -> None:
        """sounddevice ``OutputStream`` callback: the ring's next ``frames`` frames plus the attacks.

        Parameters
        ----------
        outdata : (frames, channels) float32 array
            Filled completely, every time.
        frames : int
        time_info : object
            Unused.
        status : sounddevice.CallbackFlags or int
            Truthy when PortAudio reports an xrun (counted in ``C_XRUNS``).
        """
        counters = self.counters
        try:
            if status:
                counters[C_XRUNS] += 1
            now = int(counters[C_READ])
            inbox = self._inbox
            while inbox:
                event, offset = inbox.popleft()
                try:
                    self._handle(event, now + min(max(int(offset), 0), frames - 1))
                except Exception:  # a bad event must not cost the block
                    counters[C_ERRORS] += 1
            if self._event_source is not None:
                for event in self._event_source():
                    try:
                        self._handle(event, now)
                    except Exception:  # a bad event must not cost the block
                        counters[C_ERRORS] += 1
            capacity = self.config.capacity_frames
            available = int(counters[C_WRITE]) - now
            n = frames if frames <= available else max(available, 0)
            start = now % capacity
            first = capacity - start
            if first > n:
                first = n
            outdata[:first] = self.ring[start:start + first]
            if first < n:
                outdata[first:n] = self.ring[:n - first]
            if n < frames:
                outdata[n:] = 0.0
                counters[C_UNDERRUNS] += 1
            if self._attacks and n > 0:  # over the frames the ring had: attacks stay aligned with it
                self._mix_attacks(now, n)
                if outdata.shape[1] == self._n_mix:
                    outdata[:n] += self._mix[:, :n].T
                else:
                    outdata[:n] += self._mix[:, :n].T[:, self._channel_map]
                clipped = soft_clip(outdata, self.config.limiter_knee)  # ``outdata`` itself when below
                if clipped is not outdata:
                    outdata[:] = clipped
            counters[C_READ] = now + n
        except Exception:
            counters[C_ERRORS] += 1
            try:
                outdata.fill(0.0)
            except Exception:
                pass

    # ------------------------------------------------------------------ events
    def _handle(self, event, now: int) -> None:
        """Apply one event at device frame ``now`` (the start of the block being filled)."""
        config = self.config
        if isinstance(event, EventBatch):  # the OSC server's outbox: its notes are played here too
            # (in-process audio only: take() holds the outbox's lock for a list swap; the audio
            # process gets OSC events from the model thread instead)
            for item in event.take():
                self._handle(item, now)
            return
        if isinstance(event, NoteOn):
            cache = self.cache
            key = event.pitch_midi
            pitch = model_pitch_for_key(key, config.pitch_min_midi, config.pitch_max_midi, config.out_of_range)
            if cache is None or pitch is None or self._bent[event.channel]:
                # (the cache holds unbent attacks: a note on a bent channel waits for the engine)
                self.counters[C_UNCACHED] += 1
                self.to_engine(event)
                return
            row = cache.row(pitch, event.velocity)
            start = cache.note_start_frame(now)
            records = self._attacks_by_key.setdefault(key, [])
            for attack in records:  # a repeated key: the old attack fades (the engine fades its voice)
                if attack[7] < 0:
                    attack[7] = now
            handoff = start + int(round(cache.handoff_frames))
            if cache.integer_ratio:
                note_sample = start // cache.integer_ratio
            else:
                note_sample = int(round(start / config.ratio))
            at_sample = max(0, config.sample_origin + note_sample + cache.handoff_hops * cache.hop_length_samples)
            width = float(self.scalars[S_WIDTH])
            if self._n_mix == 2 and width != self._pan_width:  # panned as the engine pans the key's voice
                self._pan_table = pan_gains(key_pan(np.arange(128), width)).astype(np.float32)
                self._pan_width = width
            gains = self._pan_table[key] * np.float32(self.scalars[S_MASTER_GAIN])
            record = [cache.attack, row, start, gains, key, handoff, -1, -1]
            self._attacks.append(record)
            records.append(record)
            velocity = float(cache.velocities[row % cache.velocities.size])
            self.to_engine(Timed(CachedNoteOn(key=key, pitch_midi=pitch, velocity=velocity, cache=cache, row=row,
                                              channel=event.channel), at_sample))
            self.counters[C_CACHED] += 1
            return
        if isinstance(event, NoteOff):
            if not self._sustain_down and self._release_attacks(event.pitch_midi, now):
                return
            self.to_engine(event)
            return
        if isinstance(event, AllNotesOff):
            if not self._sustain_down:
                for key in list(self._attacks_by_key):
                    self._release_attacks(key, now)
        elif isinstance(event, AllSoundOff):
            for attack in self._attacks:
                if attack[7] < 0:
                    attack[7] = now
        elif isinstance(event, ControlChange):
            if event.controller == CC_SUSTAIN_PEDAL:
                self._sustain_down = event.value >= SUSTAIN_ON_THRESHOLD
            elif event.controller == CC_RESET_ALL_CONTROLLERS:
                self._sustain_down = False
                self._bent[event.channel] = False
        elif isinstance(event, PitchBend):
            # (a wheel resting a few steps off centre, under 0.1 cent at +-2 semitones, still plays cached)
            self._bent[event.channel] = abs(event.value - PITCH_BEND_CENTER) > BENT_TOLERANCE
        self.to_engine(event)

    def _release_attacks(self, key: int, now: int) -> bool:
        """Release the attacks of ``key`` at ``now`` if the engine cannot have rendered their
        hand-over yet; True if it sent the engine a ReleaseAttack (else the caller sends NoteOff)."""
        config = self.config
        released = False
        # the engine drains events before each hop; the hop it renders now may have drained them
        # already: the hand-over's hop must start after that one
        hop_frames = config.nominal_hop_frames
        undrained_from = int(self.counters[C_WRITE]) + config.max_hop_frames
        if abs(config.ratio - round(config.ratio)) > 1e-9:  # soxr's hops are off the nominal grid
            undrained_from += int(math.ceil(hop_frames))
        for attack in self._attacks_by_key.get(key, ()):
            handoff_hop_start = math.floor(attack[5] / hop_frames) * hop_frames
            if attack[6] < 0 and attack[7] < 0 and handoff_hop_start >= undrained_from:
                attack[6] = now
                released = True
        if released:  # the model sample the device plays at frame `now`, through the resampler's delay
            sample = config.sample_origin + int(round((now - config.resampler_delay_frames) / config.ratio))
            self.to_engine(Timed(ReleaseAttack(key), max(0, sample)))
        return released

    def _mix_attacks(self, now: int, frames: int) -> None:
        """Sum the playing attacks over frames ``[now, now + frames)`` into ``self._mix``.

        Attacks without an envelope that cover the whole block (a chord's notes, most of the time)
        are summed in one gather and one matrix-vector product; the others one by one.
        """
        mix = self._mix[:, :frames]
        mix.fill(0.0)
        end = now + frames
        release = None
        kill_frames = self.config.kill_frames
        keep = []
        fast_table, fast_rows, fast_offsets, fast_gains = None, [], [], []
        for attack in self._attacks:
            table, row, start, gain, _key, _handoff, release_from, kill_from = attack
            stop = start + table.shape[1]
            if stop <= now:
                continue  # finished
            if release_from < 0 and kill_from < 0 and start <= now and stop >= end and (
                    fast_table is None or table is fast_table):
                fast_table = table
                fast_rows.append(row)
                fast_offsets.append(now - start)
                fast_gains.append(gain)
                keep.append(attack)
                continue
            a0, a1 = max(now, start), min(end, stop)
            finished = False
            if a1 > a0:
                segment = table[row, a0 - start:a1 - start]
                if release_from >= 0 or kill_from >= 0:
                    t = np.arange(a0, a1, dtype=np.float64)
                    if release_from >= 0:
                        if release is None:
                            release = release_factor_per_sample(float(self.scalars[S_RELEASE_SECONDS]),
                                                                self.config.output_sample_rate)
                        segment = segment * release ** np.maximum(t - release_from, 0.0)
                    if kill_from >= 0:
                        segment = segment * np.clip(1.0 - (t - kill_from) / kill_frames, 0.0, 1.0)
                        finished = a1 - kill_from >= kill_frames  # faded out
                mix[:, a0 - now:a1 - now] += gain[:, None] * segment
            if not finished:
                keep.append(attack)
        if fast_rows:
            columns = np.asarray(fast_offsets)[:, None] + self._block_ramp[None, :frames]
            segments = fast_table[np.asarray(fast_rows)[:, None], columns]
            mix += np.asarray(fast_gains, dtype=np.float32).T @ segments
        if len(keep) != len(self._attacks):
            self._attacks = keep
            by_key: dict = {}
            for attack in keep:
                by_key.setdefault(attack[4], []).append(attack)
            self._attacks_by_key = by_key
