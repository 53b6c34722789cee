"""The live instrument imports neither torch nor matplotlib nor librosa: it plays on the core dependencies."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bach_bwv66_6.mid"
HEAVY = ("torch", "matplotlib", "librosa", "tensorflow")


@pytest.mark.parametrize("extra_args", [[], ["--preset", "keys", "--xy", "0.2", "0.8"]])
def test_an_offline_render_of_the_default_model_imports_no_heavy_package(tmp_path, extra_args):
    script = (
        "import sys\n"
        "from nsynth_live import app\n"
        f"code = app.main(['--offline', '--play', {str(EXAMPLE)!r}, '--record', {str(tmp_path / 'take.wav')!r},"
        f" '--duration', '2', *{extra_args!r}])\n"
        f"heavy = [name for name in {HEAVY!r} if name in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(code or (3 if heavy else 0))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HEAVY []" in done.stdout
