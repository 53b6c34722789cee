"""XY automation from a CSV file: ``time, x, y`` rows, like a DAW's automation lane.

File format (UTF-8 text, comma-separated; ``docs/midi.md``)::

    time,x,y          # optional header line
    0.0,0.0,0.0       # seconds from the start of the piece, x and y in [0, 1]
    2.0,1.0,0.0       # times must not decrease
    2.0,1.0,1.0       # two rows at the same time: a jump
    4.0,0.5,0.5

Between two rows the position moves in a straight line (linear in time), as a DAW draws an
automation lane; before the first row and after the last the pad stays where the file puts it. Empty
lines are skipped; ``#`` starts a comment (a whole line or after a row). The file becomes ``SetXY`` events, one per engine
hop while it moves, which go through the same engine code as an XY pad or a CC 12/13 move live.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from nsynth_live.engine.events import SetXY


class AutomationError(ValueError):
    """An automation file could not be read (the message names the file, the line and the fix)."""


def read_automation_csv(path) -> np.ndarray:
    """Read an XY automation file.

    Parameters
    ----------
    path : str or Path
        The CSV file.

    Returns
    -------
    (rows, 3) float64
        ``time_seconds, x, y`` per row, times non-decreasing, x and y in [0, 1].

    Raises
    ------
    AutomationError
        Missing, unreadable or empty file; a row without three numbers; x or y outside [0, 1]; a
        negative or decreasing time.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise AutomationError(f"automation file {path} does not exist") from error
    except (OSError, UnicodeDecodeError) as error:
        raise AutomationError(f"cannot read automation file {path}: {error}") from error
    rows = []
    lines = [line.split("#", 1)[0] for line in text.splitlines()]  # '#' starts a comment, also after a row
    for number, fields in enumerate(csv.reader(lines), start=1):
        cells = [cell.strip() for cell in fields]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if not rows and [c.lower() for c in cells] == ["time", "x", "y"]:
            continue
        if len(cells) != 3:
            raise AutomationError(f"{path}:{number}: expected 'time,x,y' (3 values), got {len(cells)}: {','.join(cells)!r}")
        try:
            t, x, y = (float(c) for c in cells)
        except ValueError as error:
            raise AutomationError(f"{path}:{number}: not a number in {','.join(cells)!r}") from error
        if not (math.isfinite(t) and t >= 0.0):
            raise AutomationError(f"{path}:{number}: time must be a finite number of seconds >= 0, got {cells[0]!r}")
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise AutomationError(f"{path}:{number}: x and y must be in [0, 1], got {x:g}, {y:g}")
        if rows and t < rows[-1][0]:
            raise AutomationError(f"{path}:{number}: time {t:g} s is before the previous row's {rows[-1][0]:g} s; "
                                  f"sort the rows by time")
        rows.append((t, x, y))
    if not rows:
        raise AutomationError(f"automation file {path} has no 'time,x,y' rows")
    return np.asarray(rows, dtype=np.float64)


def automation_events(points: np.ndarray, *, hop_seconds: float) -> list:
    """``(time_seconds, SetXY)`` events that follow ``points`` on the engine's hop grid.

    Parameters
    ----------
    points : (rows, 3) float
        From :func:`read_automation_csv`.
    hop_seconds : float
        The engine's hop (an XY event takes effect at the start of a hop: one per hop is as fine
        as the engine can follow).

    Returns
    -------
    list of (float, SetXY)
        One event at the first row, one per hop while the position moves, one at every jump and at
        the last row; no event while it rests.
    """
    points = np.asarray(points, dtype=np.float64)
    if not (isinstance(hop_seconds, (int, float)) and hop_seconds > 0):
        raise ValueError(f"hop_seconds must be > 0, got {hop_seconds!r}")
    events = [(float(points[0, 0]), SetXY(float(points[0, 1]), float(points[0, 2])))]
    for (t0, x0, y0), (t1, x1, y1) in zip(points[:-1], points[1:]):
        if (x0, y0) == (x1, y1):
            continue
        if t1 > t0:  # a ramp: the position at every hop start inside it
            first = math.floor(t0 / hop_seconds) + 1
            last = math.ceil(t1 / hop_seconds)
            for k in range(first, last):
                t = k * hop_seconds
                u = (t - t0) / (t1 - t0)
                x, y = (min(max(v, 0.0), 1.0) for v in (x0 + u * (x1 - x0), y0 + u * (y1 - y0)))
                events.append((t, SetXY(float(x), float(y))))
        events.append((float(t1), SetXY(float(x1), float(y1))))
    return events
