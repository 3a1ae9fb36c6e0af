"""Framework filter trees -> es-semantic filters (pure).

es-semantic filters (``schema/filters.py``) are ``{field: value | [values] | {gte, gt, lte,
lt} | {"exists": bool}}``, every field required to hold (AND). A framework's tree is first
turned into :class:`Leaf`/:class:`Node` values (by the LangChain and LlamaIndex shells), then
folded here: AND merges fields, OR of equalities on one field becomes a list, nesting is
flattened where the result means the same. What cannot be said that way (OR across fields,
NOT, not-equal, substring matches) is one error naming the operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from es_semantic.errors import InputError

Op = Literal["eq", "in", "gt", "gte", "lt", "lte", "exists"]
RANGES = ("gt", "gte", "lt", "lte")


@dataclass(frozen=True)
class Leaf:
    """One comparison: ``field op value``."""

    field: str
    op: Op
    value: Any


@dataclass(frozen=True)
class Node:
    """AND or OR of children (leaves or nodes)."""

    condition: Literal["and", "or"]
    children: Sequence[Leaf | Node]


def unsupported(framework: str, operator: str, hint: str = "") -> InputError:
    """The one error for a filter operator es-semantic filters cannot express."""
    return InputError(
        f"{framework} filter operator {operator!r} cannot be expressed as an es-semantic "
        "filter (fields are ANDed; a field takes a value, any of a list, a range or exists)"
        + (f": {hint}" if hint else "")
    )


def to_filters(tree: Leaf | Node | None, framework: str) -> dict[str, Any] | None:
    """The es-semantic filters ``tree`` means, or one InputError naming what it cannot say."""
    if tree is None:
        return None
    if isinstance(tree, Leaf):
        return {tree.field: _value(tree)}
    if tree.condition == "or":
        field, values = _one_field_any(tree, framework)
        return {field: values}
    merged: dict[str, Any] = {}
    for child in tree.children:
        for field, value in (to_filters(child, framework) or {}).items():
            merged[field] = _both(field, merged[field], value, framework) if field in merged \
                else value  # fmt: skip
    return merged or None


def _value(leaf: Leaf) -> Any:
    if leaf.op == "eq":
        return leaf.value
    if leaf.op == "in":
        return _listed(leaf.value)
    if leaf.op == "exists":
        return {"exists": bool(leaf.value)}
    return {leaf.op: leaf.value}


def _listed(value: Any) -> list[Any]:
    """An ``in`` operand as a list: a single value (a string too) is a list of one."""
    return list(value) if isinstance(value, list | tuple | set | frozenset) else [value]


def _one_field_any(node: Node, framework: str) -> tuple[str, list[Any]]:
    """An OR whose every branch is an equality (or any-of) on one field: that field's list."""
    fields: set[str] = set()
    values: list[Any] = []
    for child in node.children:
        if isinstance(child, Node):
            if child.condition == "and" and len(child.children) == 1:
                child = child.children[0]
            if isinstance(child, Node) and child.condition == "and":  # never read as an OR
                field, more = _and_as_values(child, framework)
                fields.add(field)
                values += more
                continue
            if isinstance(child, Node):
                field, more = _one_field_any(child, framework)
                fields.add(field)
                values += more
                continue
        if child.op not in ("eq", "in"):
            raise unsupported(framework, f"or with {child.op}",
                              "OR works on equalities of one field")  # fmt: skip
        fields.add(child.field)
        values += [child.value] if child.op == "eq" else _listed(child.value)
    if len(fields) != 1:
        raise unsupported(framework, "or across fields",
                          f"{sorted(fields)}: OR works on one field's values")  # fmt: skip
    return fields.pop(), list(dict.fromkeys(values))


def _and_as_values(node: Node, framework: str) -> tuple[str, list[Any]]:
    """An AND under an OR: allowed only when it folds to one field's equality."""
    folded = to_filters(node, framework) or {}  # two values of one field: refused there
    if len(folded) != 1:
        hint = f"{sorted(folded)} under and: OR works on one field's values"
        raise unsupported(framework, "or across fields", hint)
    ((field, value),) = folded.items()
    if isinstance(value, dict):
        raise unsupported(framework, "or with a range", "OR works on equalities of one field")
    return field, value if isinstance(value, list) else [value]


def _both(field: str, first: Any, second: Any, framework: str) -> Any:
    """Two conditions on one field under AND: ranges merge; equal values stay one."""
    if first == second:
        return first
    if isinstance(first, dict) and isinstance(second, dict):
        keys = set(first) | set(second)
        if keys <= set(RANGES) and not set(first) & set(second):
            return {**first, **second}
    hint = f"{field!r} twice ({first!r} and {second!r}); combine them first"
    raise unsupported(framework, "and on one field", hint)
