"""An independent numpy forward pass of the NSynth WaveNet autoencoder, from Magenta-layout arrays.

Written from the description of h512_bo16 (docs/model.md, "WaveNet autoencoder: h512_bo16
layout"), with loops over kernel taps instead of convolutions, so that it shares no code with
nsynth_live.models.wavenet_ae.
``params`` maps Magenta variable names (``<layer>/W`` of shape [1, K, Cin, Cout] and
``<layer>/biases``) to float64 arrays.
"""

import numpy as np


def _conv(params, name, x, *, dilation=1, causal):
    """x: [time, Cin] -> [time, Cout]."""
    w = params[f"{name}/W"][0]  # [K, Cin, Cout]
    b = params[f"{name}/biases"]
    k_taps = w.shape[0]
    time = x.shape[0]
    y = np.zeros((time, w.shape[2])) + b
    for k in range(k_taps):
        lag = (k_taps - 1 - k) * dilation if causal else ((k_taps - 1) // 2 - k) * dilation
        shifted = np.zeros_like(x)  # shifted[t] = x[t - lag], zero outside
        if lag >= 0:
            shifted[lag:] = x[: time - lag] if lag else x
        else:
            shifted[: time + lag] = x[-lag:]
        y += shifted @ w[k]
    return y


def quantize(audio):
    q = np.floor(128 * np.sign(audio) * np.log(1 + 255 * np.abs(audio)) / np.log(256))
    return np.clip(q, -128, 127)


def encode(params, audio, *, layers, cycle, hop):
    """audio [time] in [-1, 1] -> [frames, dims]."""
    x = (quantize(audio) / 128.0)[:, None]
    en = _conv(params, "ae_startconv", x, causal=False)
    for i in range(layers):
        t = np.maximum(en, 0)
        t = _conv(params, f"ae_dilatedconv_{i + 1}", t, dilation=2 ** (i % cycle), causal=False)
        en = en + _conv(params, f"ae_res_{i + 1}", np.maximum(t, 0), causal=False)
    en = _conv(params, "ae_bottleneck", en, causal=False)
    return en.reshape(-1, hop, en.shape[1]).mean(axis=1)


def decode_logits(params, audio, encoding, *, layers, cycle, hop):
    """Teacher-forced logits [time, 256] of audio [time] given encoding [frames, dims]."""
    x = (quantize(audio) / 128.0)[:, None]
    x = np.concatenate([np.zeros((1, 1)), x[:-1]])
    frame_of_sample = np.arange(x.shape[0]) // hop
    l = _conv(params, "startconv", x, causal=True)
    s = _conv(params, "skip_start", l, causal=True)
    for i in range(layers):
        d = _conv(params, f"dilatedconv_{i + 1}", l, dilation=2 ** (i % cycle), causal=True)
        d = d + _conv(params, f"cond_map_{i + 1}", encoding, causal=True)[frame_of_sample]
        half = d.shape[1] // 2
        z = 1 / (1 + np.exp(-d[:, :half])) * np.tanh(d[:, half:])
        l = l + _conv(params, f"res_{i + 1}", z, causal=True)
        s = s + _conv(params, f"skip_{i + 1}", z, causal=True)
    s = _conv(params, "out1", np.maximum(s, 0), causal=True)
    s = s + _conv(params, "cond_map_out1", encoding, causal=True)[frame_of_sample]
    return _conv(params, "logits", np.maximum(s, 0), causal=True)
