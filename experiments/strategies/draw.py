"""Random assignment: an independent weighted draw per request."""

import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

__all__ = ["WeightedDraw", "random_choose", "weights_validate"]


def weights_validate(*, weights: Sequence[float]) -> list[float]:
    """Return ``weights`` as a list of floats.

    Raises ``ValueError`` when there are no weights, when one is negative or
    not finite, or when they sum to zero. Weights need not sum to 1.
    """
    values = [float(w) for w in weights]
    if not values:
        raise ValueError("at least one weight is required")
    for value in values:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"weights must be finite and >= 0, got {value!r}")
    if sum(values) <= 0:
        raise ValueError("weights must not all be zero")
    return values


class WeightedDraw:
    """Draws an arm index with probability proportional to its weight.

    Built once per configuration (cumulative weights precomputed), then
    ``choose`` costs one bisect over the arms. Arms of weight 0 are never
    chosen.
    """

    __slots__ = ("_cumulative", "_total", "_last", "_random")

    def __init__(self, weights: Sequence[float]) -> None:
        values = weights_validate(weights=weights)
        self._cumulative = list(accumulate(values))
        self._total = self._cumulative[-1]
        # Float rounding can make u * total land on the total itself; the
        # draw then belongs to the last arm that can be chosen at all.
        self._last = max(i for i, w in enumerate(values) if w > 0)
        self._random = random.random

    def choose(self, u: float | None = None) -> int:
        """Return the chosen arm's index.

        ``u`` is a uniform number in [0, 1) (for a seeded source); when
        omitted the module-level ``random.random`` supplies one.
        """
        if u is None:
            u = self._random()
        index = bisect_right(self._cumulative, u * self._total)
        return index if index <= self._last else self._last


def random_choose(*, weights: Sequence[float], rng: random.Random | None = None) -> int:
    """Return one arm index drawn with the given weights.

    Convenience for one-off draws; on the request path build a
    ``WeightedDraw`` once per configuration instead.
    """
    return WeightedDraw(weights).choose(rng.random() if rng is not None else None)
