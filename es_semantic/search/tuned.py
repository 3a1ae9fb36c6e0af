"""A request completed with the settings ``eval --tune --save`` stored for its index (pure).

``fusion="auto"`` takes the stored fusion and its parameter (alpha or rank constant); with
nothing stored, keyword + kNN hybrid fuses with :data:`DEFAULT_FUSION` and hybrids with the
sparse leg with :data:`SPARSE_DEFAULT_FUSION`; a named fusion keeps the request's own.
``rerank_weight=None`` takes the stored weight when it was tuned for the same cross-encoder
(by fingerprint), else 1 (the cross-encoder's order).
"""

from __future__ import annotations

from dataclasses import replace

from es_semantic.schema.tuning import RerankEvaluation, Tuning
from es_semantic.search.fusion import ALPHA_FUSIONS
from es_semantic.search.request import SearchRequest

RERANK_ONLY = 1.0
# auto's fusion for keyword + kNN when nothing is stored: the only fusion within 0.005 nDCG@10
# of the best single leg on SciFact, STS-en and STS-zh (docs/guides/fusion-and-rerank.md)
DEFAULT_FUSION = "adaptive"
# ... and for any hybrid with the sparse leg: zscore (alpha 0.5) scored 0.016-0.028 above RRF on
# SciFact over every set of legs and 0.01 on STS-en over three (docs/guides/fusion-and-rerank.md)
SPARSE_DEFAULT_FUSION = "zscore"
TWO_LEGS = ("keyword", "knn")
RERANK_HURTS = "the stored evaluation of this index says reranker"


def apply_tuning(
    request: SearchRequest, tuning: Tuning | None, reranker_fingerprint: str | None = None
) -> SearchRequest:
    """``request`` with what it left open filled from ``tuning`` (None: the defaults)."""
    changes: dict[str, object] = {}
    auto = request.fusion == "auto" and request.mode == "hybrid"
    if auto and tuning is None:
        two = tuple(sorted(request.leg_names)) == TWO_LEGS
        changes["fusion"] = DEFAULT_FUSION if two else SPARSE_DEFAULT_FUSION
    elif auto and tuning is not None:
        if tuning.fusion == "rrf":  # the same formula on the server or the client
            changes["rank_constant"] = tuning.rank_constant
        elif tuning.fusion in ALPHA_FUSIONS:
            changes.update(fusion=tuning.fusion, alpha=tuning.alpha)
        else:
            changes["fusion"] = tuning.fusion
    if request.rerank and request.rerank_weight is None:
        stored = _rerank_for(tuning, reranker_fingerprint)
        changes["rerank_weight"] = stored.weight if stored is not None else RERANK_ONLY
    return replace(request, **changes) if changes else request  # type: ignore[arg-type]


def rerank_warning(tuning: Tuning | None, reranker_fingerprint: str | None) -> str | None:
    """One line when this index's stored evaluation says this cross-encoder hurts."""
    stored = _rerank_for(tuning, reranker_fingerprint)
    if tuning is None or stored is None or not stored.hurts:
        return None
    return (
        f"{RERANK_HURTS} {stored.model} hurts: "
        f"{tuning.metric} {stored.gain:+.4f} [{stored.low:+.4f}, {stored.high:+.4f}] alone over "
        f"the first stage; it is blended with weight {stored.weight} (0 = first stage only)"
    )


def _rerank_for(tuning: Tuning | None, fingerprint: str | None) -> RerankEvaluation | None:
    if tuning is None or tuning.rerank is None or fingerprint is None:
        return None
    return tuning.rerank if tuning.rerank.fingerprint == fingerprint else None
