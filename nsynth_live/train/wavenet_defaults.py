"""Constants of the WaveNet training that its command's parser needs, in a module without torch."""

MAGENTA_CROP_SAMPLES = 6144  # samples, h512_bo16 get_batch(length=6144)
MAGENTA_EMA_DECAY = 0.9999  # wavenet/train.py ExponentialMovingAverage(decay=0.9999, num_updates=global_step)
TRAIN_STATE_FILE = "train_state.pt"
MODEL_FILE = "model.pt"
LOG_FILE = "log.jsonl"
EVAL_FILE = "eval.json"
RECONSTRUCTIONS_DIR = "reconstructions"
TRAINED_WEIGHTS = ("ema", "raw")  # which weights an evaluation uses: the average (model.pt) or the raw ones
