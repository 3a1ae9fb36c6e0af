"""The frameworks' filter objects -> es-semantic filters: AND, OR, nested, and one error
naming what cannot be expressed (the cases users report broken in the frameworks' own
Elasticsearch stores)."""

from __future__ import annotations

import pytest

from es_semantic.errors import InputError
from es_semantic.schema.filters import build_filters
from tests.needs import need_module

lc = need_module("langchain_core.structured_query", "the langchain extra is not installed")
li = need_module("llama_index.core.vector_stores.types", "the llama-index extra is not installed")

from es_semantic.integrations import langchain as lc_shell  # noqa: E402
from es_semantic.integrations import llama_index as li_shell  # noqa: E402

MF, MFs, Op, Cond = li.MetadataFilter, li.MetadataFilters, li.FilterOperator, li.FilterCondition
C, Oper = lc.Comparison, lc.Operation


def test_llama_index_and_or_nested() -> None:
    tree = MFs(
        filters=[
            MF(key="lang", value="en"),
            MFs(filters=[MF(key="tag", value="a"), MF(key="tag", value=["b", "c"],
                                                      operator=Op.IN)],
                condition=Cond.OR),
            MF(key="year", value=2020, operator=Op.GTE),
            MF(key="year", value=2024, operator=Op.LT),
            MF(key="draft", value=None, operator=Op.IS_EMPTY),
        ],
        condition=Cond.AND,
    )  # fmt: skip
    got = li_shell.es_filters(tree)
    assert got == {"lang": "en", "tag": ["a", "b", "c"], "year": {"gte": 2020, "lt": 2024},
                   "draft": {"exists": False}}  # fmt: skip
    clauses = build_filters(got, ["lang", "tag", "year", "draft"])
    assert {"terms": {"tag": ["a", "b", "c"]}} in clauses
    assert {"range": {"year": {"gte": 2020, "lt": 2024}}} in clauses
    assert {"bool": {"must_not": [{"exists": {"field": "draft"}}]}} in clauses


def test_llama_index_or_of_one_field_at_the_top() -> None:
    tree = MFs(filters=[MF(key="lang", value="en"), MF(key="lang", value="fr")],
               condition=Cond.OR)  # fmt: skip
    assert li_shell.es_filters(tree) == {"lang": ["en", "fr"]}


@pytest.mark.parametrize(
    ("tree", "named"),
    [
        (MFs(filters=[MF(key="lang", value="en"), MF(key="year", value=2020)],
             condition=Cond.OR), "or across fields"),
        (MFs(filters=[MF(key="lang", value="en", operator=Op.NE)]), "'!='"),
        (MFs(filters=[MF(key="lang", value=["en"], operator=Op.NIN)]), "'nin'"),
        (MFs(filters=[MF(key="body", value="x", operator=Op.TEXT_MATCH)]), "'text_match'"),
        (MFs(filters=[MF(key="lang", value="en")], condition=Cond.NOT), "'not'"),
        (MFs(filters=[MF(key="lang", value="en"), MF(key="lang", value="fr")]),
         "and on one field"),
    ],
)  # fmt: skip
def test_llama_index_operators_that_cannot_be_expressed(tree, named: str) -> None:
    with pytest.raises(InputError) as err:
        li_shell.es_filters(tree)
    message = str(err.value)
    assert named in message and "LlamaIndex" in message and "\n" not in message


def test_langchain_structured_query() -> None:
    tree = Oper(operator=lc.Operator.AND, arguments=[
        C(comparator=lc.Comparator.EQ, attribute="lang", value="en"),
        Oper(operator=lc.Operator.OR, arguments=[
            C(comparator=lc.Comparator.EQ, attribute="tag", value="a"),
            C(comparator=lc.Comparator.IN, attribute="tag", value=["b"]),
        ]),
        C(comparator=lc.Comparator.LTE, attribute="year", value=2022),
    ])  # fmt: skip
    assert lc_shell.es_filters(tree) == {"lang": "en", "tag": ["a", "b"], "year": {"lte": 2022}}
    assert lc_shell.es_filters({"lang": "en"}) == {"lang": "en"}  # es-semantic filters as given
    for bad, named in [
        (C(comparator=lc.Comparator.NE, attribute="lang", value="en"), "'ne'"),
        (C(comparator=lc.Comparator.LIKE, attribute="lang", value="e"), "'like'"),
        (Oper(operator=lc.Operator.NOT, arguments=[C(comparator=lc.Comparator.EQ,
                                                  attribute="a", value=1)]), "'not'"),
        (Oper(operator=lc.Operator.OR, arguments=[
            C(comparator=lc.Comparator.EQ, attribute="a", value=1),
            C(comparator=lc.Comparator.GT, attribute="a", value=5)]), "'or with gt'"),
    ]:  # fmt: skip
        with pytest.raises(InputError, match=named):
            lc_shell.es_filters(bad)


def test_in_with_one_plain_value_is_that_value_not_its_characters() -> None:
    """Both frameworks accept ``in`` with a single string (or number): it means that value,
    never a list of its characters (``["e", "n"]`` silently matched other documents)."""
    one = MFs(filters=[MF(key="lang", value="en", operator=Op.IN)])
    assert li_shell.es_filters(one) == {"lang": ["en"]}
    either = MFs(filters=[MF(key="lang", value="en", operator=Op.ANY),
                          MF(key="lang", value="fr", operator=Op.IN)], condition=Cond.OR)  # fmt: skip
    assert li_shell.es_filters(either) == {"lang": ["en", "fr"]}
    assert lc_shell.es_filters(C(comparator=lc.Comparator.IN, attribute="lang", value="en")) == {
        "lang": ["en"]
    }
    assert lc_shell.es_filters(C(comparator=lc.Comparator.IN, attribute="year", value=2020)) == {
        "year": [2020]
    }


def test_an_and_inside_an_or_is_never_read_as_an_or() -> None:
    """``tag = a OR (tag = b AND tag = c)`` (tags are lists: the AND means both tags) was folded
    into ``tag in [a, b, c]``, a wider filter than asked, silently; it is refused in one line."""
    inner_and = MFs(filters=[MF(key="tag", value="b"), MF(key="tag", value="c")],
                    condition=Cond.AND)  # fmt: skip
    tree = MFs(filters=[MF(key="tag", value="a"), inner_and], condition=Cond.OR)
    with pytest.raises(InputError, match="and on one field"):
        li_shell.es_filters(tree)
    mixed = MFs(filters=[MF(key="tag", value="a"), MFs(filters=[
        MF(key="tag", value="b"), MF(key="lang", value="en")], condition=Cond.AND)],
        condition=Cond.OR)  # fmt: skip
    with pytest.raises(InputError, match="or across fields"):
        li_shell.es_filters(mixed)
    one = MFs(filters=[MF(key="tag", value="a"), MFs(filters=[MF(key="tag", value="b")])],
              condition=Cond.OR)  # fmt: skip
    assert li_shell.es_filters(one) == {"tag": ["a", "b"]}  # an AND of one is that one
    nested_or = MFs(filters=[MF(key="tag", value="a"), MFs(filters=[
        MF(key="tag", value="b"), MF(key="tag", value="c")], condition=Cond.OR)],
        condition=Cond.OR)  # fmt: skip
    assert li_shell.es_filters(nested_or) == {"tag": ["a", "b", "c"]}
