#!/usr/bin/env python3
"""Train the default SING model from scratch, with one command, and export it.

Renders the SoundFont dataset if it is not there yet, trains SING's three stages (resuming from the
run folder's own checkpoint if interrupted), evaluates on the held-out pitches, and writes
``models/sing_default.pt``, ``models/sing_default.onnx`` and ``models/sing_default.md``.

    python export/train_sing.py            # defaults: data/nsynth-sf, runs/sing_default, models/
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nsynth_live.extras import require_torch  # noqa: E402

if __name__ == "__main__":
    try:
        require_torch("training SING")
    except ImportError as error:
        sys.exit(f"error: {error}")
    from nsynth_live.train.sing_recipe import main

    sys.exit(main())
