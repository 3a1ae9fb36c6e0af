"""Steps as data, so one piece of logic serves the sync and the async client: the one step
protocol of the package (index administration, the cluster probe, the indexer's batch checks,
the whole search).

Logic that talks to Elasticsearch is written once, as a generator that yields :class:`Call`
(a client method, named from :data:`Api` so that mypy sees a typo) or :class:`Work` (local
work such as the model's: run inline by :func:`run`, in a thread — or awaited, when it has an
async form — by :func:`run_async`) and receives an :class:`Answer` for each. Only ``ApiError``
(an HTTP error answer) comes back as a value for the steps to judge; any other failure is
thrown into the steps at their ``yield`` (so they can account for what they hold) and
propagates from there.

>>> def exists(index):
...     answer = yield Call("indices.exists", {"index": index})
...     return bool(answer.body)
>>> run(es, exists("docs"))  # doctest: +SKIP
True
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

from elasticsearch import ApiError

T = TypeVar("T")

Api = Literal[
    "count",
    "info",
    "license.get",
    "indices.analyze",
    "indices.create",
    "indices.delete",
    "indices.exists",
    "indices.get_alias",
    "indices.get_mapping",
    "indices.put_mapping",
    "mget",
    "msearch",
    "open_point_in_time",
    "close_point_in_time",
    "search",
]
APIS: tuple[str, ...] = get_args(Api)


@dataclass(frozen=True)
class Call:
    """One client method (dotted: ``"indices.create"``) and its keyword arguments."""

    api: Api
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Work:
    """Local work the steps need done (encoding, reranking): ``run`` calls ``fn``;
    ``run_async`` awaits ``afn`` when given, else runs ``fn`` in a worker thread."""

    fn: Callable[[], Any]
    afn: Callable[[], Awaitable[Any]] | None = None


@dataclass(frozen=True)
class Answer:
    """The body of a successful call, or the ``ApiError`` it raised."""

    body: Any = None
    error: ApiError | None = None

    @property
    def status(self) -> int:
        return int(self.error.meta.status) if self.error is not None else 200

    def raise_for_error(self) -> Any:
        """The body; the error raised again when the call failed."""
        if self.error is not None:
            raise self.error
        return self.body


Steps = Generator[Call | Work, Answer, T]


def _method(es: Any, api: str) -> Any:
    target = es
    for part in api.split("."):
        target = getattr(target, part)
    return target


@dataclass(frozen=True)
class _Done:
    value: Any


def _advance(steps: Steps[Any], outcome: Answer | Exception | None) -> Call | Work | _Done:
    """Hand the last call's outcome to the steps (an exception is thrown in at the yield);
    the next call, or the steps' result."""
    try:
        if isinstance(outcome, Exception):
            return steps.throw(outcome)
        return steps.send(outcome)  # type: ignore[arg-type]  # None starts the generator
    except StopIteration as done:
        return _Done(done.value)


def _failed(exc: Exception) -> Answer | Exception:
    """An HTTP error answer is a value for the steps; anything else is thrown into them."""
    return Answer(error=exc) if isinstance(exc, ApiError) else exc


def run(es: Any, steps: Steps[T]) -> T:
    """Drive ``steps`` with a sync client."""
    outcome: Answer | Exception | None = None
    while not isinstance(step := _advance(steps, outcome), _Done):
        try:
            if isinstance(step, Work):
                outcome = Answer(step.fn())
            else:
                outcome = Answer(_body(_method(es, step.api)(**step.kwargs)))
        except Exception as exc:  # judged by the steps, which may re-raise it
            outcome = _failed(exc)
    result: T = step.value
    return result


async def run_async(es: Any, steps: Steps[T]) -> T:
    """Drive ``steps`` with an async client."""
    outcome: Answer | Exception | None = None
    while not isinstance(step := _advance(steps, outcome), _Done):
        try:
            if isinstance(step, Work):
                done = await (step.afn() if step.afn else asyncio.to_thread(step.fn))
                outcome = Answer(done)
            else:
                outcome = Answer(_body(await _method(es, step.api)(**step.kwargs)))
        except Exception as exc:  # judged by the steps, which may re-raise it
            outcome = _failed(exc)
    result: T = step.value
    return result


def _body(response: Any) -> Any:
    return getattr(response, "body", response)
