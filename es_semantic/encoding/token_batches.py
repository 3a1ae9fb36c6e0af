"""Pure batch planning: sort by token length, cut batches by a token budget, restore order."""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(lengths: Sequence[int], *, max_batch: int, max_tokens: int) -> list[list[int]]:
    """Group indices into batches, longest first, so padding stays small.

    A batch holds at most ``max_batch`` rows and at most ``max_tokens`` padded tokens (rows times
    the longest row); a single row longer than the budget still gets a batch of its own.

    >>> plan_batches([3, 10, 5, 9], max_batch=2, max_tokens=100)
    [[1, 3], [2, 0]]
    """
    if max_batch < 1 or max_tokens < 1:
        raise ValueError("max_batch and max_tokens must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        candidate_longest = max(longest, lengths[i])
        if current and (
            len(current) >= max_batch or candidate_longest * (len(current) + 1) > max_tokens
        ):
            batches.append(current)
            current, candidate_longest = [], lengths[i]
        current.append(i)
        longest = candidate_longest
    if current:
        batches.append(current)
    return batches
