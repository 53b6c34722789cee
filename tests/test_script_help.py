"""``--help`` of every script (export/*.py, run_live.py) and of every console command (pyproject.toml's
[project.scripts]), each run in a subprocess as a user runs it: plain text, every option explained,
and the description saying what the tool writes, whether it resumes and whether it overwrites.
Also: the scripts are thin wrappers over nsynth_live.cli (no sys.path edits)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "export").glob("*.py")) + ["run_live.py"]
COMMANDS = {
    "nsynth-live": "nsynth_live.app:main",
    "nsynth-render-bank": "nsynth_live.cli.render_bank:main",
    "nsynth-wavetable": "nsynth_live.cli.wavetable:main",
    "nsynth-train": "nsynth_live.cli.train_sing:main",
    "nsynth-train-v3": "nsynth_live.cli.train_v3:main",
    "nsynth-build-dataset": "nsynth_live.cli.build_dataset:main",
    "nsynth-encode": "nsynth_live.cli.encode:main",
    "nsynth-decode": "nsynth_live.cli.decode:main",
    "nsynth-train-wavenet": "nsynth_live.cli.train_wavenet:main",
    "nsynth-convert-magenta": "nsynth_live.cli.convert_magenta_checkpoint:main",
    "nsynth-convert-sing": "nsynth_live.cli.convert_sing_checkpoint:main",
    "nsynth-add-instrument": "nsynth_live.cli.add_instrument:main",
}
# The live instrument's parser is nsynth_live.app.build_parser: playing is its job, writing files
# (--record, --stats-json) an option, and there is nothing to resume.
PLAYERS = {"run_live.py", "nsynth-live"}
MARKUP = [("``", "double backquotes"), (r"::\s*$", "a reST '::' at a line's end"),
          (r":(func|mod|class|meth|attr|ref):`", "a reST role"), (r"\*\*", "markdown bold"),
          (r"^\s*-{4,}\s*$", "a reST underline")]


def _command_path(name: str) -> Path:
    return Path(sys.executable).parent / name  # the venv's bin/, where pip install -e . puts the commands


def _run_help(name: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, str(REPO / name)] if name.endswith(".py") else [str(_command_path(name))]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed package, as a user has it
    env["COLUMNS"] = "100"
    return subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60, env=env, cwd="/")


@pytest.fixture(scope="module")
def helps() -> dict[str, subprocess.CompletedProcess]:
    missing = [name for name in COMMANDS if not _command_path(name).exists()]
    assert not missing, f"console commands {missing} are not installed: run .venv/bin/pip install -e . (./setup.sh does)"
    names = SCRIPTS + list(COMMANDS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(names, pool.map(_run_help, names)))


def _sections(text: str) -> tuple[str, str, list[str]]:
    """(usage, description, the lines of the argument sections and epilog) of argparse's help."""
    blocks = text.split("\n\n")
    usage, rest = blocks[0], "\n\n".join(blocks[1:])
    lines = rest.splitlines()
    # a section's title ends with ":" and its first entry follows, indented (description lines are not)
    first_section = next(i for i, line in enumerate(lines)
                         if re.match(r"^\S.*:$", line) and re.match(r"^  \S", lines[i + 1] if i + 1 < len(lines) else ""))
    return usage, "\n".join(lines[:first_section]), lines[first_section:]


def argument_entries(lines: list[str]) -> list[tuple[str, bool]]:
    """(invocation, has help) of each argument entry of the argument sections: ``  --x X``,
    ``  -o OUT, --output OUT`` in any section, ``  NAME`` under "positional arguments:". An entry
    has help if text follows the invocation on its line or a more indented line continues it
    (argparse shows an option without help as a bare line)."""
    entries, section = [], ""
    for i, line in enumerate(lines):
        if re.match(r"^\S.*:$", line):
            section = line
            continue
        entry = re.match(r"^  (\S(?:\S| (?! ))*)(?:  +(\S.*))?$", line)
        if not entry or not (entry.group(1).startswith("-") or section == "positional arguments:"):
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ""
        continued = bool(re.match(r"^ {4,}\S", following))
        entries.append((entry.group(1), bool(entry.group(2)) or continued))
    return entries


def options_without_help(lines: list[str]) -> list[str]:
    return [invocation for invocation, explained in argument_entries(lines) if not explained]


def test_the_commands_are_the_projects_console_scripts():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == COMMANDS


@pytest.mark.parametrize("name", SCRIPTS + list(COMMANDS))
def test_help_is_plain_text_and_explains_every_option(helps, name):
    done = helps[name]
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    text = done.stdout
    for pattern, what in MARKUP:
        found = re.search(pattern, text, flags=re.MULTILINE)
        assert not found, f"{name} --help shows {what}: {found.group(0)!r}"
    usage, description, lines = _sections(text)
    assert usage.startswith("usage: ") and description.strip()
    assert options_without_help(lines) == [], f"{name} --help: options without a help line"
    listed = set(re.findall(r"^  (?:-\w[^,\n]*?, )?(--[\w-]+)", "\n".join(lines), flags=re.MULTILINE))
    in_usage = set(re.findall(r"(--[\w-]+)", usage))
    assert in_usage <= listed, f"{name}: {sorted(in_usage - listed)} are in the usage but not explained"


@pytest.mark.parametrize("name", [n for n in SCRIPTS + list(COMMANDS) if n not in PLAYERS])
def test_description_says_what_it_writes_and_whether_it_resumes_and_overwrites(helps, name):
    _, description, _ = _sections(helps[name].stdout)
    text = " ".join(description.split())
    assert re.search(r"\bWrites?\b", text, flags=re.IGNORECASE), f"{name}: the description does not say what it writes"
    assert re.search(r"\bresum", text, flags=re.IGNORECASE), f"{name}: the description does not say whether it resumes"
    assert re.search(r"overwrit|--force", text), f"{name}: the description does not say whether it overwrites"


@pytest.mark.parametrize("name", sorted(PLAYERS))
def test_the_live_instrument_says_what_it_writes_and_that_it_does_not_overwrite(helps, name):
    text = helps[name].stdout
    assert re.search(r"--record \S+ +write", text) and re.search(r"--force +overwrite", text)


def test_the_live_instruments_description_mentions_its_files(helps):
    _, description, _ = _sections(helps["run_live.py"].stdout)
    assert re.search(r"\bwrit", description, re.I) and re.search(r"overwrit|--force", description)


def test_the_script_and_the_command_show_the_same_help(helps):
    for command, target in COMMANDS.items():
        module = target.split(":")[0].rsplit(".", 1)[-1]
        script = "run_live.py" if module == "app" else f"export/{module}.py"
        command_text = helps[command].stdout
        if command != "nsynth-live":  # app.py names itself run_live.py
            assert command_text.startswith(f"usage: {command} ")
        # one parser: all but the usage (which names the program) is the same text
        assert _sections(helps[script].stdout)[1:] == _sections(command_text)[1:], command


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_thin_wrappers_without_sys_path_edits(script):
    source = (REPO / script).read_text()
    assert "sys.path" not in source
    code = [line for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    # a docstring line, import sys, the import of main, the __main__ guard and its call
    assert len(code) <= 6, f"{script} holds code: it belongs in nsynth_live (nsynth_live/cli/)"
    assert re.search(r"^from nsynth_live\.(cli\.\w+|app) import main$", source, flags=re.MULTILINE)


def test_help_option_detector_finds_a_bare_option():
    lines = ["positional arguments:", "  OUT_DIR", "  INPUT  files", "", "options:",
             "  -h, --help            show this help message and exit", "  --bare",
             "  --long-option-with-metavar LONG_OPTION_WITH_METAVAR", "                        its help",
             "  -o OUT, --output OUT", "  --also-bare N", "", "Examples:", "  nsynth-x a b", "    --force"]
    assert options_without_help(lines) == ["OUT_DIR", "--bare", "-o OUT, --output OUT", "--also-bare N"]
