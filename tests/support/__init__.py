"""Test support: harnesses the tests and benchmarks share (not part of the nsynth_live package)."""
