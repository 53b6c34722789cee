import pytest
import torch

from nsynth_live.nn.causal_conv import CausalConv1d, SameConv1d, ring_buffer_rows


@pytest.mark.parametrize("kernel_size,dilation", [(2, 1), (3, 1), (3, 4), (4, 8)])
@pytest.mark.parametrize("batch_size", [1, 5])
def test_step_with_cache_equals_full_causal_forward(kernel_size, dilation, batch_size):
    torch.manual_seed(0)
    conv = CausalConv1d(6, 7, kernel_size=kernel_size, dilation=dilation).double()
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(batch_size, 6, 65, dtype=torch.float64)
    with torch.no_grad():
        full = conv(x)
        cache = conv.new_cache(batch_size)
        steps = [conv.step(x[:, :, t], cache, torch.tensor(t)) for t in range(x.shape[-1])]
    torch.testing.assert_close(torch.stack(steps, dim=-1), full, atol=1e-12, rtol=0)


def test_causal_conv_taps_oldest_first():
    conv = CausalConv1d(1, 1, kernel_size=3, dilation=2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[100.0, 10.0, 1.0]]]))
        conv.bias.zero_()
    impulse = torch.zeros(1, 1, 8)
    impulse[0, 0, 1] = 1.0
    # y[t] = 100 x[t-4] + 10 x[t-2] + x[t]
    assert conv(impulse)[0, 0].tolist() == [0, 1, 0, 10, 0, 100, 0, 0]


def test_same_conv_is_centred_and_refuses_even_kernels():
    conv = SameConv1d(1, 1, kernel_size=3, dilation=3)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[100.0, 10.0, 1.0]]]))
    impulse = torch.zeros(1, 1, 10)
    impulse[0, 0, 4] = 1.0
    # y[t] = 100 x[t-3] + 10 x[t] + x[t+3]
    assert conv(impulse)[0, 0].tolist() == [0, 1, 0, 0, 10, 0, 0, 100, 0, 0]
    with pytest.raises(ValueError, match="odd kernel_size"):
        SameConv1d(1, 1, kernel_size=2)


def test_ring_buffer_rows_cycle():
    rows = ring_buffer_rows(torch.arange(6), dilation=2, kernel_size=3)
    assert rows.tolist() == [[0, 2], [1, 3], [2, 0], [3, 1], [0, 2], [1, 3]]
