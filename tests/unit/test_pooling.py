import pytest
import torch

from es_semantic.encoding.pooling import (
    cls_pool,
    lasttoken_pool,
    max_pool,
    mean_first_last_pool,
    mean_pool,
    pool,
)

# Two rows, three positions, two dims; row 1 has one padding position at the end.
HIDDEN = torch.tensor(
    [
        [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
        [[-1.0, 0.0], [1.0, 8.0], [100.0, 100.0]],
    ]
)
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])


def test_cls_takes_first_token():
    assert cls_pool(HIDDEN, MASK).tolist() == [[1.0, 2.0], [-1.0, 0.0]]


def test_mean_ignores_padding():
    assert mean_pool(HIDDEN, MASK).tolist() == [[3.0, 4.0], [0.0, 4.0]]


def test_max_ignores_padding():
    assert max_pool(HIDDEN, MASK).tolist() == [[5.0, 6.0], [1.0, 8.0]]


def test_lasttoken_right_padding():
    assert lasttoken_pool(HIDDEN, MASK).tolist() == [[5.0, 6.0], [1.0, 8.0]]


def test_lasttoken_left_padding():
    left_mask = torch.tensor([[1, 1, 1], [0, 1, 1]])
    assert lasttoken_pool(HIDDEN, left_mask).tolist() == [[5.0, 6.0], [100.0, 100.0]]


def test_mean_first_last_averages_layers_then_means():
    first = torch.zeros_like(HIDDEN)
    out = mean_first_last_pool((first, HIDDEN * 0.5, HIDDEN), MASK)
    # (0 + h) / 2, then masked mean: row 0 -> [1.5, 2.0]; row 1 -> [0.0, 2.0]
    assert out.tolist() == [[1.5, 2.0], [0.0, 2.0]]


def test_pool_dispatch_and_errors():
    assert torch.equal(pool("mean", HIDDEN, MASK), mean_pool(HIDDEN, MASK))
    with pytest.raises(ValueError, match="hidden_states"):
        pool("mean_first_last", HIDDEN, MASK)
    with pytest.raises(ValueError, match="not one of cls, mean, max"):
        pool("avg", HIDDEN, MASK)  # type: ignore[arg-type]
