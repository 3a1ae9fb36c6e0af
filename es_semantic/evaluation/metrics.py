"""IR metrics over ranked lists and graded qrels (pure), with trec_eval's definitions.

``qrels``: ``{query_id: {doc_id: relevance}}`` (relevance > 0 counts as relevant);
``run``: ``{query_id: [doc_id, ...]}`` best first. Averages are over every query in the qrels;
a query with no run scores 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Sequence[str]]
DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100")


def ndcg_at(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    """nDCG@k with linear gains and log2(rank + 1) discounts (trec_eval ``ndcg_cut``)."""
    dcg = sum(
        rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if rels.get(d, 0) > 0
    )
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    relevant = {d for d, r in rels.items() if r > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr_at(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    for i, d in enumerate(ranked[:k]):
        if rels.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def ap_at(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    """Average precision cut at k, over all relevant documents (trec_eval ``map_cut``)."""
    relevant = sum(1 for r in rels.values() if r > 0)
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for i, d in enumerate(ranked[:k]):
        if rels.get(d, 0) > 0:
            hits += 1
            total += hits / (i + 1)
    return total / relevant


_FUNCTIONS = {"ndcg": ndcg_at, "recall": recall_at, "mrr": mrr_at, "map": ap_at}


def parse_metric(name: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``."""
    base, _, cut = name.partition("@")
    if base not in _FUNCTIONS or not cut.isdigit() or int(cut) < 1:
        raise ValueError(f"metric {name!r} is not NAME@K with NAME one of {', '.join(_FUNCTIONS)}")
    return base, int(cut)


def per_query(run: Run, qrels: Qrels, metric: str) -> dict[str, float]:
    base, k = parse_metric(metric)
    function = _FUNCTIONS[base]
    return {qid: function(list(run.get(qid, ())), rels, k) for qid, rels in qrels.items()}


def evaluate(run: Run, qrels: Qrels, metrics: Sequence[str] = DEFAULT_METRICS) -> dict[str, float]:
    """Mean of each metric over the queries of ``qrels``."""
    out: dict[str, float] = {}
    for metric in metrics:
        values = per_query(run, qrels, metric)
        out[metric] = sum(values.values()) / len(values) if values else 0.0
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1]); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
