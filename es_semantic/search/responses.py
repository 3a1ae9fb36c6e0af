"""What one ``_msearch`` sends and gets back, per leg (pure): the request lines, the responses
by leg, and the one error of a leg that failed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from es_semantic.errors import SearchError
from es_semantic.redact import redact
from es_semantic.schema.contract import missing_index_error
from es_semantic.search.core import SearchPlan, response_error


def msearch_lines(index: str, bodies: Mapping[str, Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    lines: list[Mapping[str, Any]] = []
    for body in bodies.values():
        lines += [{"index": index}, body]
    return lines


def split_responses(plan: SearchPlan, resp: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return dict(zip(plan.bodies, resp["responses"], strict=True))


def raise_for_errors(
    index: str, responses: Mapping[str, Mapping[str, Any]], secrets: Sequence[str]
) -> None:
    for leg, response in responses.items():
        error = response_error(response)
        if error is not None:
            if "index_not_found" in error:
                raise missing_index_error(index)
            raise SearchError(redact(f"{leg} search on {index!r} failed: {error}", secrets))
