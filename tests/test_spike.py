import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vo2spike.model.spike import LIF, TriangularSpike


@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=50),
       st.floats(0.1, 3.0))
@settings(max_examples=100, deadline=None)
def test_forward_is_heaviside_and_gradient_is_triangle(values, gamma):
    v = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    s = TriangularSpike.apply(v, gamma)
    assert torch.equal(s, (v > 0).double())
    s.sum().backward()
    expected = [max(0.0, 1.0 - abs(x) / gamma) / gamma for x in values]
    assert torch.allclose(v.grad, torch.tensor(expected, dtype=torch.float64))


def test_gradient_peak_and_support():
    v = torch.tensor([0.0, 0.25, 0.5, 0.75, -0.5, 2.0], requires_grad=True)
    TriangularSpike.apply(v, 0.5).sum().backward()
    assert torch.allclose(v.grad, torch.tensor([2.0, 1.0, 0.0, 0.0, 0.0, 0.0]))


def _constant_lif(current: float, beta: float, steps: int) -> torch.Tensor:
    lif = LIF(1, 1, beta=beta, threshold=1.0)
    with torch.no_grad():
        lif.fc.weight.fill_(1.0)
        lif.fc.bias.zero_()
    with torch.no_grad():
        return lif(torch.full((1, steps, 1), current))[0, :, 0]


def test_lif_below_threshold_never_fires():
    # Steady state current / (1 - beta) = 0.09 / 0.1 = 0.9 < 1.
    assert _constant_lif(0.09, 0.9, 200).sum() == 0


def test_lif_integrates_leaks_fires_and_resets_by_subtraction():
    beta, current = 0.5, 0.6
    spikes = _constant_lif(current, beta, 6).tolist()
    u, expected = 0.0, []
    for _ in range(6):
        u = beta * u + current
        s = float(u > 1.0)
        u -= s
        expected.append(s)
    assert spikes == expected
    assert 0 < sum(spikes) < 6


def test_lif_rate_grows_with_current():
    rates = [float(_constant_lif(c, 0.9, 100).mean()) for c in (0.15, 0.4, 0.9)]
    assert rates[0] < rates[1] < rates[2]


def test_lif_backpropagates_to_weights():
    lif = LIF(3, 4)
    x = torch.randn(2, 20, 3) + 1.0
    lif(x).sum().backward()
    assert lif.fc.weight.grad is not None and lif.fc.weight.grad.abs().sum() > 0


@given(st.integers(0, 2**31 - 1), st.integers(1, 6), st.integers(1, 40),
       st.floats(0.5, 0.99), st.floats(0.2, 1.5), st.floats(0.5, 3.0))
@settings(max_examples=40, deadline=None)
def test_fused_recurrence_is_bit_identical_to_the_per_step_definition(seed, batch, steps, beta,
                                                                        threshold, scale):
    """LIF.forward (one autograd node for all steps) against forward_per_step (one
    TriangularSpike per step): the same spikes and the same gradients, bit for bit, with a
    rate penalty and a second layer downstream as in training."""
    torch.manual_seed(seed)
    lif1, lif2 = LIF(3, 5, beta, threshold), LIF(5, 4, beta, threshold)
    x = torch.randn(batch, steps, 3) * scale

    def run(forward):
        for m in (lif1, lif2):
            m.zero_grad()
        a1 = forward(lif1, x)
        a2 = forward(lif2, a1)
        loss = (a2.mean(1) * torch.arange(1.0, 5.0)).sum() + 2.0 * (a1.mean() + a2.mean())
        loss.backward()
        return [a1, a2] + [p.grad.clone() for m in (lif1, lif2) for p in m.parameters()]

    fused, per_step = run(LIF.forward), run(LIF.forward_per_step)
    assert all(torch.equal(a, b) for a, b in zip(fused, per_step, strict=True))
