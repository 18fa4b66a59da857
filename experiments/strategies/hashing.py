"""Hash-based assignment: a subject key always lands in the same bucket.

A key's bucket is a stable hash of (experiment salt, key) in
[0, BUCKETS). A *layout* maps buckets to arms as a sorted, gap-free list of
``[start, end, arm]`` segments (``end`` exclusive) covering [0, BUCKETS).
Layouts are plain lists of lists of ints so they can be stored as JSON.

Changing the weights goes through ``layout_rebalance``, which moves the
fewest buckets possible, so only the subjects in those buckets change arm.
"""

import hashlib
from bisect import bisect_right
from collections.abc import Sequence
from fractions import Fraction

from .draw import weights_validate

__all__ = [
    "BUCKETS",
    "HashAssigner",
    "Layout",
    "bucket_counts",
    "bucket_of",
    "layout_arm",
    "layout_counts",
    "layout_initial",
    "layout_rebalance",
    "layout_validate",
]

BUCKETS = 10_000

# [[start, end, arm], ...]; end is exclusive.
Layout = list[list[int]]


def _digest(salt: str, key: str) -> int:
    # blake2b rather than hash(): str hashes are randomised per process
    # (PYTHONHASHSEED), so workers would disagree. The NUL separator keeps
    # ("ab", "c") and ("a", "bc") apart.
    data = f"{salt}\x00{key}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def bucket_of(*, salt: str, key: str) -> int:
    """Return the key's bucket in [0, BUCKETS) for this experiment salt.

    Stable across processes, machines and Python versions.
    """
    # 2**64 is not a multiple of BUCKETS; the resulting bias is ~1e-15.
    return _digest(salt, key) % BUCKETS


def bucket_counts(*, weights: Sequence[float]) -> list[int]:
    """Return each arm's bucket count: weights scaled to BUCKETS, rounded.

    Largest-remainder rounding, in exact arithmetic, so the counts sum to
    BUCKETS exactly; ties go to the lower arm index. Raises ``ValueError``
    for invalid weights (see ``weights_validate``).
    """
    # Fractions are exact for the float inputs, so the result does not
    # depend on summation order or on 0.1 + 0.2 style noise.
    values = [Fraction(w) for w in weights_validate(weights=weights)]
    total = sum(values)
    quotas = [w * BUCKETS / total for w in values]
    counts = [int(q) for q in quotas]
    leftover = BUCKETS - sum(counts)
    by_remainder = sorted(range(len(quotas)), key=lambda i: (counts[i] - quotas[i], i))
    for i in by_remainder[:leftover]:
        counts[i] += 1
    return counts


def layout_validate(*, layout: Sequence[Sequence[int]]) -> Layout:
    """Return ``layout`` as a list of ``[start, end, arm]`` int lists.

    Raises ``ValueError`` unless the segments are sorted, non-empty,
    gap-free and cover exactly [0, BUCKETS) with arm indices >= 0. Use on
    layouts read back from storage.
    """
    segments: Layout = []
    expected_start = 0
    for segment in layout:
        if len(segment) != 3:
            raise ValueError(f"a segment is [start, end, arm], got {segment!r}")
        start, end, arm = (int(v) for v in segment)
        if start != expected_start or end <= start or arm < 0:
            raise ValueError(
                f"segment {segment!r} does not continue the layout at {expected_start}"
            )
        segments.append([start, end, arm])
        expected_start = end
    if expected_start != BUCKETS:
        raise ValueError(f"layout covers [0, {expected_start}), not [0, {BUCKETS})")
    return segments


def layout_counts(*, layout: Sequence[Sequence[int]]) -> list[int]:
    """Return the number of buckets per arm index (up to the highest arm)."""
    arms = max(arm for _, _, arm in layout) + 1
    counts = [0] * arms
    for start, end, arm in layout:
        counts[arm] += end - start
    return counts


def _compact(segments: list[list[int]]) -> Layout:
    merged: Layout = []
    for start, end, arm in sorted(segments):
        if merged and merged[-1][2] == arm and merged[-1][1] == start:
            merged[-1][1] = end
        else:
            merged.append([start, end, arm])
    return merged


def layout_initial(*, weights: Sequence[float]) -> Layout:
    """Return a layout giving each arm one contiguous range, in arm order.

    Arm i gets ``bucket_counts(weights)[i]`` buckets; arms of weight 0 get
    none. Raises ``ValueError`` for invalid weights.
    """
    segments: Layout = []
    start = 0
    for arm, count in enumerate(bucket_counts(weights=weights)):
        if count:
            segments.append([start, start + count, arm])
            start += count
    return segments


def layout_rebalance(
    *, layout: Sequence[Sequence[int]], weights: Sequence[float]
) -> Layout:
    """Return a new layout for ``weights`` moving the fewest buckets.

    Arms whose bucket count shrinks give up buckets from the end of their
    last segment(s); arms that grow take exactly those buckets (in arm
    order, lowest freed buckets first); every other bucket keeps its arm.
    The number of buckets that change arm is therefore the sum of the
    positive count differences, the minimum possible.

    ``weights`` may be longer than the layout's arms (new arms start with
    no buckets) and may contain 0 (that arm gives up all its buckets).
    Raises ``ValueError`` for an invalid layout or weights, or when
    ``weights`` has fewer entries than the layout has arms: an arm is
    retired with weight 0, never by dropping it, so indices stay stable.
    """
    segments = layout_validate(layout=layout)
    current = layout_counts(layout=segments)
    if len(weights) < len(current):
        raise ValueError(
            f"layout uses {len(current)} arms but only {len(weights)} weights were "
            "given; retire an arm with weight 0 instead of removing it"
        )
    target = bucket_counts(weights=weights)
    current += [0] * (len(target) - len(current))

    to_free = [max(c - t, 0) for c, t in zip(current, target, strict=True)]
    kept: Layout = []
    freed: list[list[int]] = []
    # Walk segments from the top so each shrinking arm trims the end of its
    # last segment first, then earlier ones.
    for start, end, arm in reversed(segments):
        cut = min(to_free[arm], end - start)
        to_free[arm] -= cut
        if cut:
            freed.append([end - cut, end])
        if end - cut > start:
            kept.append([start, end - cut, arm])

    freed.sort()
    needs = [max(t - c, 0) for c, t in zip(current, target, strict=True)]
    for arm, need in enumerate(needs):
        while need:
            start, end = freed[0]
            take = min(need, end - start)
            kept.append([start, start + take, arm])
            need -= take
            if start + take == end:
                freed.pop(0)
            else:
                freed[0][0] = start + take
    return _compact(kept)


def layout_arm(*, layout: Sequence[Sequence[int]], bucket: int) -> int:
    """Return the arm that owns ``bucket`` in ``layout``.

    Builds the list of starts on every call; for repeated lookups build a
    ``HashAssigner``. Raises ``ValueError`` unless 0 <= bucket < BUCKETS.
    """
    if not 0 <= bucket < BUCKETS:
        raise ValueError(f"bucket must be in [0, {BUCKETS}), got {bucket}")
    starts = [start for start, _, _ in layout]
    return layout[bisect_right(starts, bucket) - 1][2]


class HashAssigner:
    """Deterministic arm for a subject key under one salt and layout.

    Construction validates the layout and precomputes segment starts;
    ``choose`` is one hash plus one bisect and mutates nothing, so it is
    safe to call from many threads.
    """

    __slots__ = ("_arms", "_salted", "_starts")

    def __init__(self, *, salt: str, layout: Sequence[Sequence[int]]) -> None:
        segments = layout_validate(layout=layout)
        # The same byte stream as bucket_of; copying a hasher that has
        # already consumed the salt saves ~30% per call. The original is
        # never updated, so concurrent copies are safe.
        self._salted = hashlib.blake2b(f"{salt}\x00".encode(), digest_size=8)
        self._starts = [start for start, _, _ in segments]
        self._arms = [arm for _, _, arm in segments]

    def choose(self, key: str) -> int:
        """Return the arm index for ``key``; the same key always gets the
        same arm while salt and layout are unchanged."""
        hasher = self._salted.copy()
        hasher.update(key.encode())
        bucket = int.from_bytes(hasher.digest(), "big") % BUCKETS
        return self._arms[bisect_right(self._starts, bucket) - 1]
