"""Voice rules of the engine as pure functions: phases, which slot a new note takes, whom it
steals, and a voice's envelope over one hop (policies in ``docs/engine.md``).

The engine keeps its voices in fixed slots (``2 * max_voices``: every playing voice and one spare
for each, where a stolen voice fades out). Each slot has a phase:

* ``FREE``: silent, available;
* ``HELD``: key down; ``SUSTAINED``: key up, pedal down; ``RELEASED``: in its release;
* ``KILLING``: fading out fast (stolen, re-triggered, all-sound-off, end of the time table).
"""

from __future__ import annotations

import numpy as np

FREE, HELD, SUSTAINED, RELEASED, KILLING = 0, 1, 2, 3, 4
LOGICAL_PHASES = (HELD, SUSTAINED, RELEASED)  # phases that count against max_voices
STEAL_RANK = {RELEASED: 0, SUSTAINED: 1, HELD: 2}  # stolen first: released, then sustained, then held


def release_factor_per_sample(release_seconds: float, sample_rate: float) -> float:
    """Per-sample gain of the exponential release: -60 dB after ``release_seconds`` at
    ``sample_rate`` Hz (``factor ** n`` after n samples)."""
    return 10.0 ** (-3.0 / (release_seconds * sample_rate))


def steal_victim(phase: np.ndarray, sounded: np.ndarray, order: np.ndarray, slots: np.ndarray) -> int:
    """The voice a new note replaces when ``max_voices`` play (Vital's order).

    Released, then sustained, then held voices, the oldest first; voices started in this hop and
    not heard yet come last (when only those play, the new note takes one over directly).

    Parameters
    ----------
    phase, sounded, order : (slots,) arrays
        Per slot: phase, whether it has been heard, note counter at its start.
    slots : (n,) int array
        The playing (logical) slots to choose from; not empty.

    Returns
    -------
    int
        A slot from ``slots``.
    """
    ranks = [(STEAL_RANK[int(phase[s])] if sounded[s] else 3, int(order[s]), int(s)) for s in slots]
    return min(ranks)[2]


def free_slot(phase: np.ndarray, env: np.ndarray) -> int:
    """The slot a new voice starts in: the first free one, else the quietest fading one (it is
    cut: every spare slot is still fading)."""
    free = np.flatnonzero(phase == FREE)
    if free.size:
        return int(free[0])
    fading = np.flatnonzero(phase == KILLING)
    return int(fading[np.argmin(env[fading])])


def hop_envelope(phase: int, env0: float, *, sounded: bool, attack_rate: float, release_factor: np.ndarray,
                 kill_rate: float, n: np.ndarray) -> np.ndarray:
    """A voice's gain over one hop, per sample ``n = 1 .. hop``, from ``env0`` at the hop's start.

    Held and sustained voices rise linearly to 1 at ``attack_rate`` per sample (a note released
    before it was heard still gets that hop of attack); released ones follow the exponential
    ``release_factor`` (``per_sample ** n``); killed ones fall linearly at ``kill_rate`` to 0.
    Returns ``(hop,)`` float64.
    """
    if phase == HELD or phase == SUSTAINED or (phase == RELEASED and not sounded):
        return np.minimum(env0 + attack_rate * n, 1.0)
    if phase == RELEASED:
        return env0 * release_factor
    return np.maximum(env0 - kill_rate * n, 0.0)


# ------------------------------------------------------------------ stereo placement
PAN_CENTRE_KEY = 60  # middle C sits in the middle
PAN_SPREAD_KEYS = 24  # keys from the centre to the widest place (MIDI 36 and 84: the model's range)
MAX_PAN = 0.5  # pan of the outermost keys at width 1 (-1 hard left .. 1 hard right)


def key_pan(key, width: float):
    """Pan of a key, like a piano heard from the player's seat: low keys left, high keys right.

    ``width * MAX_PAN * clip((key - 60) / 24, -1, 1)``, in [-0.5, 0.5]. ``MAX_PAN`` keeps the mix
    mono-compatible: a voice at the widest place loses 0.69 dB in the mono sum ``(L + R) / 2``
    against the centre (:func:`pan_gains`), a chord spread across the keyboard less.
    """
    spread = np.clip((np.asarray(key, dtype=np.float64) - PAN_CENTRE_KEY) / PAN_SPREAD_KEYS, -1.0, 1.0)
    return float(width) * MAX_PAN * spread


def pan_gains(pan) -> np.ndarray:
    """Constant-power (sin/cos) pan law scaled so the centre is unity on both sides.

    ``pan`` in [-1, 1] (scalar or ``(n,)``) -> ``(..., 2)`` float64 gains (left, right):
    ``sqrt(2) * (cos t, sin t)`` with ``t = (pan + 1) * pi / 4``. At the centre both are 1 (the
    mono mix copied to both channels, as with width 0); left**2 + right**2 is 2 everywhere.
    """
    pan = np.asarray(pan, dtype=np.float64)
    theta = (pan + 1.0) * (np.pi / 4.0)
    gains = np.sqrt(2.0) * np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    return np.where((pan == 0.0)[..., None], 1.0, gains)  # the centre exactly 1, bit for bit
