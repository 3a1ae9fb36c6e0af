"""The search options exist once, in ``SearchRequest``: both ``search`` methods, the service's
request body and the ``search`` command are checked against it (names, defaults, choices), so
an option added or changed in one place and not the others fails here."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import click
import pytest

from es_semantic.search import request
from es_semantic.search.request import SearchRequest
from es_semantic.search.searcher import AsyncSearcher, Searcher

# set on the Searcher, not per search
PER_SEARCHER = {"fields"}
# search options whose command-line name differs, and the parameter name click gives them
CLI_NAMES = {"filters": "filters", "source": "source_fields", "rerank": "rerank_model"}
# command-line options whose default is "not given" where the request's is a value
CLI_FLAGS = {"highlight", "exact", "rerank"}


def _request_defaults() -> dict[str, object]:
    return {
        f.name: f.default
        for f in dataclasses.fields(SearchRequest)
        if f.name not in PER_SEARCHER and f.name != "query"
    }


@pytest.mark.parametrize("searcher", [Searcher, AsyncSearcher])
def test_search_methods_take_the_request_options(searcher):
    params = inspect.signature(searcher.search).parameters
    options = {n: p.default for n, p in params.items() if n not in ("self", "query")}
    options.pop("query_vector")  # the one extra: a vector already made for this index
    assert options == _request_defaults()


def test_the_service_body_is_the_request():
    from es_semantic.service.indices import SearchBody

    fields = SearchBody.model_fields
    body = {n: f.default for n, f in fields.items() if n != "query"}
    assert body == _request_defaults()
    assert set(typing.get_args(fields["mode"].annotation)) == set(request.MODES)
    assert set(typing.get_args(fields["fusion"].annotation)) == set(request.FUSIONS)


def cli_drift(command: click.Command) -> list[str]:
    """The request options ``command`` lacks or defaults differently."""
    params = {p.name: p for p in command.params}
    drift = []
    for name, default in _request_defaults().items():
        param = params.get(CLI_NAMES.get(name, name))
        if param is None:
            drift.append(f"no option for {name}")
        elif name not in CLI_FLAGS and default is not None and param.default != default:
            drift.append(f"{name}: {param.default!r} != {default!r}")
    return drift


def test_the_search_command_offers_every_request_option():
    from es_semantic.cli.search_cmd import search_cmd

    assert cli_drift(search_cmd) == []
    params = {p.name: p for p in search_cmd.params}
    assert set(params["mode"].type.choices) == set(request.MODES)  # type: ignore[attr-defined]
    assert set(params["fusion"].type.choices) == set(request.FUSIONS)  # type: ignore[attr-defined]


def test_the_check_catches_a_drift():
    from es_semantic.cli.search_cmd import search_cmd

    drifted = click.Command("search", params=[
        p for p in search_cmd.params if p.name != "window"
    ] + [click.Option(["--window"], default=50)])  # fmt: skip
    assert cli_drift(drifted) == ["window: 50 != 100"]
    shorter = click.Command("search", params=[p for p in search_cmd.params if p.name != "alpha"])
    assert cli_drift(shorter) == ["no option for alpha"]
