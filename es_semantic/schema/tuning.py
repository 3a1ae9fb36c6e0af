"""Tuned search settings kept in the index's mapping ``_meta`` beside the contract (pure).

``eval --tune --save`` writes them; searches use them when the request leaves fusion on
``auto`` (and the rerank weight unset); ``info`` shows them. They live under their own key, so
the contract (``es_semantic``) and any other ``_meta`` keys are kept as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

TUNING_KEY = "es_semantic_tuning"
TUNED_FUSIONS = ("rrf", "weighted", "adaptive", "zscore")


@dataclass(frozen=True)
class RerankEvaluation:
    """What ``eval --tune`` measured for one cross-encoder over this index's first stage.

    ``gain``/``low``/``high``: the unblended reranker's mean metric gain over the first stage
    with its paired-bootstrap 95% interval; ``weight``: the tuned blend weight (0 = first
    stage only, 1 = cross-encoder only) and ``blended_gain`` its held-out gain."""

    model: str
    fingerprint: str
    weight: float
    gain: float
    low: float
    high: float
    blended_gain: float

    @property
    def hurts(self) -> bool:
        """Whether the reranker alone scored below the first stage on these queries."""
        return self.gain < 0


@dataclass(frozen=True)
class Tuning:
    """Fusion (and rerank weight) tuned on some queries, with where and when it was measured."""

    fusion: str
    alpha: float = 0.5
    rank_constant: int = 60
    metric: str = "ndcg@10"
    before: float = 0.0  # held-out metric of the default fusion
    after: float = 0.0  # held-out metric of the tuned setting
    queries: str = ""
    qrels: str = ""
    digest: str = ""
    date: str = ""
    tuned_on: int = 0  # number of queries tuned on
    held_out: int = 0
    rerank: RerankEvaluation | None = None

    def __post_init__(self) -> None:
        if self.fusion not in TUNED_FUSIONS:
            raise ValueError(f"tuned fusion {self.fusion!r} is not one of {TUNED_FUSIONS}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"tuned alpha={self.alpha} must be from 0 to 1")
        if self.rank_constant < 1:
            raise ValueError(f"tuned rank_constant={self.rank_constant} must be >= 1")
        if self.rerank is not None and not 0.0 <= self.rerank.weight <= 1.0:
            raise ValueError(f"tuned rerank weight={self.rerank.weight} must be from 0 to 1")

    def to_meta(self) -> dict[str, Any]:
        return {TUNING_KEY: asdict(self)}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> Tuning | None:
        """The stored tuning, or None when there is none or it cannot be read (a search must
        not fail on it: it then runs with the defaults)."""
        data = (meta or {}).get(TUNING_KEY)
        if not isinstance(data, Mapping):
            return None
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        try:
            rerank = values.pop("rerank", None)
            if isinstance(rerank, Mapping):
                keep = {f.name for f in fields(RerankEvaluation)}
                values["rerank"] = RerankEvaluation(**{k: rerank[k] for k in keep})
            return cls(**values)
        except (TypeError, ValueError, KeyError):
            return None

    def summary(self) -> str:
        """One line for ``info`` and the eval log."""
        setting = {
            "rrf": f"rrf rank_constant={self.rank_constant}",
            "weighted": f"weighted alpha={self.alpha}",
            "zscore": f"zscore alpha={self.alpha}",
            "adaptive": "adaptive",
        }[self.fusion]
        line = (
            f"{setting} ({self.metric} {self.before:.4f} -> {self.after:.4f} held out on "
            f"{self.held_out} queries; tuned on {self.tuned_on} of {self.queries} / "
            f"{self.qrels}, {self.date})"
        )
        if self.rerank is not None:
            r = self.rerank
            line += (
                f"; rerank {r.model}: weight {r.weight}, alone {r.gain:+.4f} "
                f"[{r.low:+.4f}, {r.high:+.4f}], blended {r.blended_gain:+.4f}"
            )
        return line


def with_tuning(meta: Mapping[str, Any] | None, tuning: Tuning) -> dict[str, Any]:
    """The whole ``_meta`` to write back: every key kept (the contract included), the tuning
    replaced (a put-mapping ``_meta`` replaces the object as a whole)."""
    return {**(meta or {}), **tuning.to_meta()}


def tuning_from_mapping_response(body: Mapping[str, Any]) -> Tuning | None:
    """The tuning of the first index (by name) of a get-mapping response that has one."""
    for _, entry in sorted(body.items()):
        tuning = Tuning.from_meta((entry.get("mappings") or {}).get("_meta"))
        if tuning is not None:
            return tuning
    return None
