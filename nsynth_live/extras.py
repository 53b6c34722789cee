"""Optional dependencies: a clear message naming the extra to install when one is missing.

Playing needs only the core dependencies (ONNX Runtime, no torch). Training, ONNX export and the NSynth
WaveNet need torch (the ``train`` extra); a script that needs it calls :func:`require_torch` first.
"""

from __future__ import annotations

import importlib.util

TORCH_HINT = "pip install 'nsynth-live[train]' (in a checkout: ./setup.sh train)"


def torch_available() -> bool:
    """Whether torch can be imported (without importing it)."""
    return importlib.util.find_spec("torch") is not None


def require_torch(purpose: str) -> None:
    """Raise ImportError naming ``purpose`` and the extra to install when torch is missing.

    Raises
    ------
    ImportError
        "<purpose> needs torch: pip install 'nsynth-live[train]' ...".
    """
    if not torch_available():
        raise ImportError(f"{purpose} needs torch: {TORCH_HINT}")
