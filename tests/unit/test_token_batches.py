import pytest

from es_semantic.encoding.token_batches import plan_batches


def test_longest_first_and_count_cap():
    assert plan_batches([3, 10, 5, 9], max_batch=2, max_tokens=1000) == [[1, 3], [2, 0]]


def test_token_budget_counts_padded_tokens():
    # 10 * 2 = 20 > 15, so each long row goes alone; the short ones fit together.
    assert plan_batches([10, 10, 2, 2, 2], max_batch=8, max_tokens=15) == [[0], [1], [2, 3, 4]]


def test_oversized_row_gets_its_own_batch():
    assert plan_batches([50, 1], max_batch=4, max_tokens=10) == [[0], [1]]


def test_every_index_once():
    lengths = [(i * 37) % 50 + 1 for i in range(200)]
    batches = plan_batches(lengths, max_batch=16, max_tokens=300)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(200))
    assert all(len(b) * max(lengths[i] for i in b) <= 300 or len(b) == 1 for b in batches)


def test_rejects_bad_limits():
    with pytest.raises(ValueError):
        plan_batches([1], max_batch=0, max_tokens=10)
