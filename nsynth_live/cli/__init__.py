"""The command-line tools. Each module's ``main(argv=None) -> int`` is a console command of
``pyproject.toml`` (``nsynth-render-bank``...) and is also run by the thin wrapper ``export/<name>.py``.

The parsers import neither torch nor TensorFlow: ``--help`` works on a playing-only install.
"""
