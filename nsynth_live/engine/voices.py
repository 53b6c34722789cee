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
