"""Filter values are checked before they reach the cluster: a range bound is a number or a
date string, ``exists`` is true or false (a lenient test server matched nothing instead of
refusing them; Elasticsearch answers a parse error)."""

from __future__ import annotations

import pytest

from es_semantic.errors import InputError
from es_semantic.schema.filters import build_filters


@pytest.mark.parametrize(
    "value",
    [{"gte": {"script": "x"}}, {"gte": [1, 2]}, {"lt": None}, {"gt": True}, {"exists": "yes"}],
)
def test_a_bound_that_is_not_a_plain_value_is_refused(value: dict[str, object]) -> None:
    with pytest.raises(InputError, match="'year'"):
        build_filters({"year": value}, ["year"])


def test_plain_bounds_and_exists_pass() -> None:
    assert build_filters({"year": {"gte": 2020, "lt": "2030-01-01"}}, ["year"]) == [
        {"range": {"year": {"gte": 2020, "lt": "2030-01-01"}}}
    ]
    assert build_filters({"year": {"exists": False}}, ["year"]) == [
        {"bool": {"must_not": [{"exists": {"field": "year"}}]}}
    ]
