"""Regenerate ``examples/bach_bwv66_6.mid`` from the music21 corpus.

Source: J. S. Bach, chorale "Alleluja! Des soll'n wir alle froh sein", the closing movement (6) of
the cantata BWV 66 "Erfreut euch, ihr Herzen" (1724), as encoded in the music21 corpus
(``bach/bwv66.6.mxl``). Public domain; see ``examples/PROVENANCE.md``.

Usage (from the repository root, with music21 installed, e.g. ``pip install -e .[dev]``)::

    python examples/make_example_midi.py [--output examples/bach_bwv66_6.mid] [--force]

The notes are kept as written (MIDI 42-76, inside the model's 36-84); the script checks that range
and refuses to write a file with notes outside it. music21 starts every track with a General MIDI
program change (program 0, "piano"); the script removes them, because the instrument reads program
changes as preset changes (program 0 would select the first preset by name, not ``--preset``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

CORPUS_WORK = "bach/bwv66.6"  # music21 corpus name
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "bach_bwv66_6.mid"
PITCH_MIN_MIDI = 36  # lowest note the default model was trained on
PITCH_MAX_MIDI = 84  # highest note the default model was trained on


def write_example_midi(*, output_path: Path, force: bool = False) -> tuple[int, int]:
    """Convert the corpus chorale to a standard MIDI file, atomically.

    Parameters
    ----------
    output_path : Path
        Where to write the ``.mid`` file.
    force : bool
        Overwrite an existing file.

    Returns
    -------
    (lowest, highest) : tuple of int
        MIDI note numbers of the lowest and highest note of the piece.

    Raises
    ------
    FileExistsError
        If ``output_path`` exists and ``force`` is False.
    ValueError
        If the piece has notes outside MIDI 36-84 (the model's range).
    ImportError
        If music21 is missing (install the ``dev`` extra).
    """
    try:
        import music21
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("music21 is needed to regenerate the example: pip install 'nsynth-live[dev]'") from error

    output_path = Path(output_path)
    if output_path.exists() and not force:
        raise FileExistsError(f"{output_path} exists; pass --force to overwrite it")
    score = music21.corpus.parse(CORPUS_WORK)
    pitches = [p.midi for n in score.recurse().notes for p in n.pitches]
    lowest, highest = min(pitches), max(pitches)
    if lowest < PITCH_MIN_MIDI or highest > PITCH_MAX_MIDI:
        raise ValueError(
            f"{CORPUS_WORK} spans MIDI {lowest}-{highest}, outside the model's "
            f"{PITCH_MIN_MIDI}-{PITCH_MAX_MIDI}; transpose it and say so in PROVENANCE.md"
        )
    output_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".mid.tmp", dir=output_path.parent)
    os.close(fd)
    try:
        score.write("midi", fp=tmp_name)
        strip_program_changes(Path(tmp_name))
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; the example is an ordinary readable file
        os.replace(tmp_name, output_path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return lowest, highest


def strip_program_changes(path: Path) -> int:
    """Remove the program change messages of a MIDI file in place (their delta times go to the next
    message, so every other message keeps its time); returns how many were removed."""
    import mido

    midi = mido.MidiFile(str(path))
    removed = 0
    for track in midi.tracks:
        kept, carry = [], 0
        for message in track:
            if message.type == "program_change":
                carry += message.time
                removed += 1
                continue
            kept.append(message.copy(time=message.time + carry))
            carry = 0
        track[:] = kept
    midi.save(str(path))
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the .mid file")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = parser.parse_args(argv)
    try:
        lowest, highest = write_example_midi(output_path=args.output, force=args.force)
    except (FileExistsError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} (MIDI {lowest}-{highest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
