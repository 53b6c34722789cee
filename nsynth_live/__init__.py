"""nsynth-live: a real-time neural synthesizer backend (SING + NSynth WaveNet)."""

__version__ = "0.1.0"
