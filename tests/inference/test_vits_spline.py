"""The inverse rational-quadratic spline against a forward spline written from the paper."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ttsfleet.inference.engines.vits.spline import (
    MIN_BIN_HEIGHT,
    MIN_BIN_WIDTH,
    MIN_DERIVATIVE,
    inverse_spline,
)

pytestmark = pytest.mark.torch
BOUND = 5.0
BINS = 10


def _forward(x: torch.Tensor, w: torch.Tensor, h: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Durkan et al. (2019), eq. 4, one element at a time: slow and plain on purpose."""
    out = x.clone()
    for i, value in enumerate(x.tolist()):
        if not -BOUND <= value <= BOUND:
            continue
        widths = MIN_BIN_WIDTH + (1 - MIN_BIN_WIDTH * BINS) * F.softmax(w[i], 0)
        heights = MIN_BIN_HEIGHT + (1 - MIN_BIN_HEIGHT * BINS) * F.softmax(h[i], 0)
        slopes = [1.0, *(MIN_DERIVATIVE + F.softplus(d[i])).tolist(), 1.0]
        xs = [-BOUND, *(2 * BOUND * torch.cumsum(widths, 0) - BOUND).tolist()]
        ys = [-BOUND, *(2 * BOUND * torch.cumsum(heights, 0) - BOUND).tolist()]
        xs[-1] = ys[-1] = BOUND
        k = max(j for j in range(BINS) if xs[j] <= value)
        width, height = xs[k + 1] - xs[k], ys[k + 1] - ys[k]
        s, xi = height / width, (value - xs[k]) / width
        numerator = height * (s * xi**2 + slopes[k] * xi * (1 - xi))
        denominator = s + (slopes[k + 1] + slopes[k] - 2 * s) * xi * (1 - xi)
        out[i] = ys[k] + numerator / denominator
    return out


def test_inverse_undoes_the_forward_spline() -> None:
    generator = torch.Generator().manual_seed(1)
    n = 200
    w, h = torch.randn(n, BINS, generator=generator), torch.randn(n, BINS, generator=generator)
    d = torch.randn(n, BINS - 1, generator=generator)
    x = torch.linspace(-6.0, 6.0, n, dtype=torch.float32)
    y = _forward(x, w, h, d)
    assert torch.allclose(inverse_spline(y, w, h, d, BOUND), x, atol=1e-4)


def test_identity_outside_the_bound() -> None:
    y = torch.tensor([-7.5, -5.01, 5.01, 9.0])
    w, h = torch.randn(4, BINS), torch.randn(4, BINS)
    d = torch.randn(4, BINS - 1)
    assert torch.equal(inverse_spline(y, w, h, d, BOUND), y)


def test_inverse_is_monotonic_and_keeps_the_ends() -> None:
    w, h, d = torch.randn(BINS), torch.randn(BINS), torch.randn(BINS - 1)
    y = torch.linspace(-BOUND, BOUND, 501)
    x = inverse_spline(y, w.expand(501, -1), h.expand(501, -1), d.expand(501, -1), BOUND)
    assert bool((x[1:] >= x[:-1]).all())
    assert x[0].item() == pytest.approx(-BOUND, abs=1e-5)
    assert x[-1].item() == pytest.approx(BOUND, abs=1e-4)
