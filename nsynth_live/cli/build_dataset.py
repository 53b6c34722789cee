"""``nsynth-build-dataset`` (``export/build_dataset.py``): render an NSynth-format dataset from a SoundFont."""

from __future__ import annotations

import sys

from nsynth_live.cli._help import fail, make_parser

DESCRIPTION = """\
Render an NSynth-format dataset (the json/wav layout) from a SoundFont with FluidSynth: 20 General
MIDI instruments over the 11 NSynth families, 4-s notes at 16 kHz (or --sample-rate), released at
3 s, dry.

Writes OUT_DIR/audio/<note>.wav (16-bit mono; .flac with --format flac), OUT_DIR/examples.json, OUT_DIR/manifest.json (the
SoundFont's sha256 and the settings) and, once complete, OUT_DIR/DONE. Every file is written under a
temporary name and renamed when complete.

Resumes: after an interruption (even kill -9) the same command renders only the instruments not
finished yet and removes the temporary files the killed run left. A complete dataset is not
overwritten without --force (which deletes it and starts over); a folder holding a dataset of another
SoundFont or other settings is refused too (--force replaces it); a folder that is not a dataset (it
holds other files) is refused even with --force.
"""

EPILOG = """\
Examples (python export/build_dataset.py takes the same arguments):
  nsynth-build-dataset data/nsynth-sf
  nsynth-build-dataset data/small --pitch-min 48 --pitch-max 72 --velocities 100,127
  nsynth-build-dataset data/nsynth-sf-48k --sample-rate 48000 --format flac   (model v3's set)
"""


def build_parser():
    from nsynth_live.data.soundfont import DEBIAN_GM_SOUNDFONT

    parser = make_parser(DESCRIPTION, EPILOG)
    parser.add_argument("out_dir", metavar="OUT_DIR", help="dataset folder (created; resumed if unfinished)")
    parser.add_argument("--soundfont", default=DEBIAN_GM_SOUNDFONT, metavar="FILE",
                        help="SF2/SF3 file (default: %(default)s)")
    parser.add_argument("--pitch-min", type=int, default=36, metavar="MIDI",
                        help="lowest MIDI note (default: %(default)s)")
    parser.add_argument("--pitch-max", type=int, default=84, metavar="MIDI",
                        help="highest MIDI note (default: %(default)s)")
    parser.add_argument("--velocities", default="25,50,75,100,127", metavar="LIST",
                        help="comma-separated MIDI velocities, from 25,50,75,100,127 (default: all five)")
    parser.add_argument("--sample-rate", type=int, default=16000, metavar="HZ",
                        help="sample rate of the notes, Hz (default: %(default)s, NSynth's; 48000 for model v3)")
    parser.add_argument("--format", choices=("wav", "flac"), default="wav",
                        help="audio files: 16-bit WAV or 16-bit FLAC (lossless, about half the size; default: wav)")
    parser.add_argument("--force", action="store_true",
                        help="delete the dataset in OUT_DIR (complete or not, any settings) and build it again")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv=None) -> int:
    """Run the command; returns the exit status (0 done, 1 refused, 2 bad settings or SoundFont)."""
    args = build_parser().parse_args(argv)

    from tqdm import tqdm

    from nsynth_live.data.soundfont import SoundFontDatasetConfig, build_soundfont_dataset

    try:
        config = SoundFontDatasetConfig(
            soundfont_path=args.soundfont, pitch_min_midi=args.pitch_min, pitch_max_midi=args.pitch_max,
            velocities=tuple(int(v) for v in args.velocities.split(",")),
            sample_rate=args.sample_rate, note_samples=4 * args.sample_rate, audio_format=args.format,
        )
        with tqdm(total=len(config.instruments), unit="instrument", disable=args.no_progress) as bar:
            notes = build_soundfont_dataset(config, args.out_dir, force=args.force,
                                            progress=lambda done, total: bar.update(1))
    except FileExistsError as error:
        return fail(str(error), 1)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        return fail(str(error), 2)
    print(f"wrote {len(notes)} notes to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
