"""Constants of the NSynth dataset and of the models, each with its unit and source."""

NSYNTH_SAMPLE_RATE = 16_000  # Hz, NSynth dataset (Engel et al. 2017, section 3)
NSYNTH_NOTE_SAMPLES = 64_000  # samples, 4 s per note, NSynth dataset
NSYNTH_NOTE_OFF_SECONDS = 3.0  # s, every NSynth note is held 3 s then released 1 s
NSYNTH_VELOCITIES = (25, 50, 75, 100, 127)  # MIDI velocities present in NSynth

# Index order is the dataset's integer code (NSynth dataset page).
NSYNTH_FAMILIES = (
    "bass", "brass", "flute", "guitar", "keyboard", "mallet",
    "organ", "reed", "string", "synth_lead", "vocal",
)
NSYNTH_SOURCES = ("acoustic", "electronic", "synthetic")
NSYNTH_QUALITIES = (
    "bright", "dark", "distortion", "fast_decay", "long_release",
    "multiphonic", "nonlinear_env", "percussive", "reverb", "tempo-synced",
)

DEFAULT_OUTPUT_SAMPLE_RATE = 48_000  # Hz, default audio device rate
MIDI_A4_NOTE = 69  # MIDI note number of A4
A4_FREQUENCY_HZ = 440.0  # Hz, concert pitch

# The model the instrument, the wavetable exporter and the bank renderer play by default, in the
# repository's models/ folder: model v3 (harmonic-plus-noise SING at 48 kHz, models/sing_v3.md).
# SING v2 (models/sing_default.onnx, 16 kHz) stays loadable with --model.
DEFAULT_MODEL_FILE = "sing_v3.onnx"
