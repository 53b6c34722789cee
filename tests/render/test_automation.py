"""XY automation files (nsynth_live.render.automation): parsing, errors that name the line, and the
events on the hop grid."""

import numpy as np
import pytest

from nsynth_live.engine.events import SetXY
from nsynth_live.render.automation import AutomationError, automation_events, read_automation_csv


def test_reads_rows_with_header_comments_and_blank_lines(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("time,x,y\n# start\n0,0,0\n\n1.5, 1, 0.25\n1.5,1,1\n")
    np.testing.assert_array_equal(read_automation_csv(path), [[0, 0, 0], [1.5, 1, 0.25], [1.5, 1, 1]])


@pytest.mark.parametrize("text, message", [
    ("", "no 'time,x,y' rows"),
    ("0,0\n", r"a.csv:1: expected 'time,x,y' \(3 values\)"),
    ("0,0,0\n1,x,0\n", "a.csv:2: not a number"),
    ("0,0,1.5\n", r"a.csv:1: x and y must be in \[0, 1\]"),
    ("-1,0,0\n", "a.csv:1: time must be"),
    ("nan,0,0\n", "a.csv:1: time must be"),
    ("1,0,0\n0.5,0,0\n", "a.csv:2: time 0.5 s is before"),
])
def test_bad_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "a.csv"
    path.write_text(text)
    with pytest.raises(AutomationError, match=message):
        read_automation_csv(path)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(AutomationError, match="does not exist"):
        read_automation_csv(tmp_path / "none.csv")
    (tmp_path / "b.csv").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(AutomationError, match="cannot read"):
        read_automation_csv(tmp_path / "b.csv")


def test_events_follow_ramps_per_hop_and_jumps_at_once():
    hop = 0.016
    points = np.array([[0.0, 0.0, 0.0], [0.16, 1.0, 0.5], [0.5, 1.0, 0.5], [0.5, 0.0, 1.0]])
    events = automation_events(points, hop_seconds=hop)
    times = [t for t, _ in events]
    assert times == sorted(times) and all(isinstance(e, SetXY) for _, e in events)
    ramp = [(t, e) for t, e in events if 0 < t < 0.16]
    assert len(ramp) == 9  # one per hop start inside the ramp
    for t, e in ramp:
        assert e.x == pytest.approx(t / 0.16) and e.y == pytest.approx(0.5 * t / 0.16)
    assert events[-1] == (0.5, SetXY(0.0, 1.0))  # the jump
    assert not [t for t, _ in events if 0.16 < t < 0.5], "no events while the position rests"
