"""Filters on metadata fields: parse ``FIELD=VALUE`` strings, validate, build ES clauses (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from es_semantic.errors import InputError

_RANGE_OPS = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt"}
_CLI_FILTER = re.compile(r"^(?P<field>[A-Za-z0-9_.\-]+)(?P<op>>=|<=|=|>|<)(?P<value>.*)$", re.S)


def parse_cli_filters(specs: Iterable[str]) -> dict[str, Any]:
    """``["lang=en", "lang=fr", "year>=2020", "tag?"]`` -> ``{"lang": ["en", "fr"],
    "year": {"gte": "2020"}, "tag": {"exists": True}}``."""
    out: dict[str, Any] = {}
    for spec in specs:
        if spec.endswith("?") and _CLI_FILTER.match(spec[:-1] + "=x"):
            out[spec[:-1]] = {"exists": True}
            continue
        match = _CLI_FILTER.match(spec)
        if not match:
            raise InputError(
                f"filter {spec!r} is not FIELD=VALUE, FIELD>=VALUE, FIELD<VALUE or FIELD? "
                "(for example --filter lang=en)"
            )
        field, op, value = match["field"], match["op"], match["value"]
        if op == "=":
            previous = out.get(field)
            if previous is None:
                out[field] = value
            elif isinstance(previous, list):
                previous.append(value)
            elif isinstance(previous, str):
                out[field] = [previous, value]
            else:
                raise InputError(f"filter on {field!r} mixes = with a range")
        else:
            bounds = out.setdefault(field, {})
            if not isinstance(bounds, dict):
                raise InputError(f"filter on {field!r} mixes = with a range")
            bounds[_RANGE_OPS[op]] = value
    return out


def build_filters(
    filters: Mapping[str, Any] | None, allowed: Sequence[str]
) -> list[dict[str, Any]]:
    """ES filter clauses for ``{field: value | [values] | {"gte": ..} | {"exists": True}}``.

    Only fields the index maps for filtering (its metadata fields) are accepted.
    """
    clauses: list[dict[str, Any]] = []
    for field, value in (filters or {}).items():
        if field not in allowed:
            known = ", ".join(allowed) or "none (index with --metadata-field)"
            raise InputError(f"cannot filter on {field!r}: filterable fields are {known}")
        if isinstance(value, Mapping):
            if set(value) == {"exists"}:
                if not isinstance(value["exists"], bool):
                    raise InputError(f"filter on {field!r}: exists takes true or false")
                clause: dict[str, Any] = {"exists": {"field": field}}
                clauses.append(clause if value["exists"] else {"bool": {"must_not": [clause]}})
                continue
            unknown = set(value) - set(_RANGE_OPS.values())
            if unknown or not value:
                raise InputError(
                    f"range filter on {field!r} takes gte, gt, lte, lt; got {sorted(value)}"
                )
            if not all(_is_scalar(v) and not isinstance(v, bool) for v in value.values()):
                raise InputError(
                    f"range filter on {field!r} takes a number or a date string per bound"
                )
            clauses.append({"range": {field: dict(value)}})
        elif isinstance(value, list | tuple | set):
            if not value or not all(_is_scalar(v) for v in value):
                raise InputError(f"filter on {field!r} needs a non-empty list of plain values")
            clauses.append({"terms": {field: list(value)}})
        elif _is_scalar(value):
            clauses.append({"term": {field: value}})
        else:
            raise InputError(f"filter on {field!r} has an unsupported value {type(value).__name__}")
    return clauses


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)
