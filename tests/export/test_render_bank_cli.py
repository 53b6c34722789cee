"""nsynth-render-bank (export/render_bank.py): argument parsing and the messages a user sees (the job
itself: tests/render)."""

import argparse

import pytest


@pytest.fixture(scope="module")
def cli():
    from nsynth_live.cli import render_bank

    return render_bank


def test_pitch_and_velocity_specs(cli):
    assert cli.parse_midi_values("36:84:4", low=0, what="--pitches") == tuple(range(36, 85, 4))
    assert len(cli.parse_midi_values("36:84:4", low=0, what="--pitches")) == 13
    assert cli.parse_midi_values("60,48,60", low=0, what="--pitches") == (48, 60)
    assert cli.parse_midi_values("40:42", low=0, what="--pitches") == (40, 41, 42)
    for bad in ("36-84", "36:84:0", "130", "0", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.parse_midi_values(bad, low=1, what="--velocities")


def test_help_says_what_it_writes_and_that_it_resumes(cli, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for needle in ("OUT_DIR", "--corners", "--ray", "--force", "Resumes", "bank.json", "CC 12"):
        assert needle in text


def test_a_corner_the_model_lacks_is_named_with_the_valid_ones(cli, tmp_path, capsys):
    code = cli.main([str(tmp_path / "bank"), "--corners", "a,b,c,d", "--grid", "2", "--pitches", "60",
                     "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "a, b, c, d not in the model" in err and "organ_acoustic_005" in err
    assert not (tmp_path / "bank").exists()


@pytest.mark.parametrize("argv, message", [
    (["--backend", "wavenet", "--corners", "a.wav,b.wav,c.wav,d.wav"], "needs --checkpoint"),
    (["--corners", "a,b,c"], "4 comma-separated"),
    (["--preset", "nope"], "nope"),
    (["--preset", "default", "--pitches", "20:200"], "--pitches"),
    (["--preset", "default", "--formats", "sfz,wav"], "unknown bank format"),
])
def test_usage_errors_exit_2_with_the_fix(cli, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as done:
        cli.main([str(tmp_path / "bank"), *argv])
    assert done.value.code == 2
    assert message in capsys.readouterr().err
