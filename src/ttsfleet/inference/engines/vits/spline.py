"""Inverse of a monotonic rational-quadratic spline with identity tails.

The stochastic duration predictor's coupling layers transform noise with
these splines (Durkan et al., "Neural Spline Flows", 2019); synthesis runs
them backwards. Inside [-bound, bound] the spline has `bins` bins whose
widths, heights and knot derivatives come from the network; outside it the
map is the identity, and the derivative at both ends is pinned to 1 so that
the pieces join smoothly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
# Pads the knot derivatives so that min + softplus(pad) = 1 at both ends.
_EDGE_DERIVATIVE = math.log(math.exp(1 - MIN_DERIVATIVE) - 1)
# Added to the last knot so that an input equal to the bound falls in the last bin.
_SEARCH_EPS = 1e-6


def inverse_spline(
    y: Tensor, widths: Tensor, heights: Tensor, derivatives: Tensor, bound: float
) -> Tensor:
    """Maps spline outputs y back to inputs.

    y has any shape S; widths and heights are unnormalised, shape S + [bins];
    derivatives are the unnormalised inner knot derivatives, S + [bins - 1].
    """
    inside = (y >= -bound) & (y <= bound)
    derivatives = F.pad(derivatives, (1, 1), value=_EDGE_DERIVATIVE)
    x_knots, bin_widths = _knots(widths, bound, MIN_BIN_WIDTH)
    y_knots, bin_heights = _knots(heights, bound, MIN_BIN_HEIGHT)
    slopes = MIN_DERIVATIVE + F.softplus(derivatives)

    search = y_knots.clone()
    search[..., -1] += _SEARCH_EPS
    index = ((y.unsqueeze(-1) >= search).sum(dim=-1, keepdim=True) - 1).clamp(
        0, widths.shape[-1] - 1
    )

    def pick(values: Tensor) -> Tensor:
        return values.gather(-1, index).squeeze(-1)

    x_k, width, y_k, height = pick(x_knots), pick(bin_widths), pick(y_knots), pick(bin_heights)
    d_k, d_k1 = pick(slopes), pick(slopes[..., 1:])
    delta = height / width

    # Solve the bin's rational-quadratic for its relative position theta in
    # [0, 1]: a·θ² + b·θ + c = 0, taking the root that stays in the bin.
    dy = y - y_k
    curvature = d_k + d_k1 - 2 * delta
    a = dy * curvature + height * (delta - d_k)
    b = height * d_k - dy * curvature
    c = -delta * dy
    discriminant = (b.pow(2) - 4 * a * c).clamp_min(0)
    theta = (2 * c) / (-b - discriminant.sqrt())
    return torch.where(inside, theta * width + x_k, y)


def _knots(unnormalised: Tensor, bound: float, minimum: float) -> tuple[Tensor, Tensor]:
    """Bin sizes from softmax with a floor, as knot positions on [-bound, bound] and sizes."""
    bins = unnormalised.shape[-1]
    sizes = minimum + (1 - minimum * bins) * F.softmax(unnormalised, dim=-1)
    knots = F.pad(torch.cumsum(sizes, dim=-1), (1, 0))
    knots = 2 * bound * knots - bound
    knots[..., 0] = -bound
    knots[..., -1] = bound
    return knots, knots[..., 1:] - knots[..., :-1]
