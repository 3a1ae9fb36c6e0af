"""Run each retrieval leg once per query, then score every mode from those lists.

The local server answers one request at a time and scans the whole index per request, so
hybrid variants (RRF, weighted, tuning sweeps) are fused on the client from the keyword and kNN
lists instead of costing new requests. Only ``server-rrf`` sends its own requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from es_semantic.errors import ConfigError
from es_semantic.evaluation.metrics import DEFAULT_METRICS, Qrels, evaluate, percentile
from es_semantic.search.core import rerank_text
from es_semantic.search.fusion import LegHit, rrf, weighted
from es_semantic.search.searcher import Searcher

if TYPE_CHECKING:
    from es_semantic.encoding.reranker import CrossEncoder

LEG_MODES = ("keyword", "knn")
FUSED_MODES = ("hybrid", "rrf", "weighted")
ALL_MODES = (*LEG_MODES, *FUSED_MODES, "server-rrf")


@dataclass
class ModeRun:
    """Ranked ids and latency per query for one mode."""

    ranked: dict[str, list[str]] = field(default_factory=dict)
    ms: dict[str, float] = field(default_factory=dict)


@dataclass
class LegRuns:
    """The raw legs: hits with scores, latency, and passage texts seen (for reranking)."""

    hits: dict[str, dict[str, list[LegHit]]] = field(default_factory=dict)  # leg -> qid -> hits
    ms: dict[str, dict[str, float]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def check_modes(modes: Sequence[str]) -> list[str]:
    for mode in modes:
        base = mode.removesuffix("+rerank")
        if base not in ALL_MODES:
            raise ConfigError(
                f"mode {mode!r} is not one of {', '.join(ALL_MODES)} (optionally +rerank)"
            )
    return list(modes)


def run_legs(
    searcher: Searcher,
    queries: Mapping[str, str],
    *,
    depth: int = 100,
    progress: bool = False,
    concurrency: int = 1,
) -> LegRuns:
    """Keyword and kNN once per query (query vectors encoded in one batch).

    ``concurrency`` > 1 sends that many requests at once (threads share the Searcher); it helps
    on a real cluster, not on a server that answers one request at a time.
    """
    contract = searcher.contract()
    runs = LegRuns()
    ids = list(queries)
    started = time.perf_counter()
    vectors = searcher.encoder.encode_queries([queries[q] for q in ids])
    encode_share_ms = (time.perf_counter() - started) * 1000 / max(len(ids), 1)
    for leg in LEG_MODES:
        runs.hits[leg], runs.ms[leg] = {}, {}
        leg_started = time.perf_counter()

        def one(i: int, leg: str = leg) -> Any:
            vector = vectors[i].tolist() if leg == "knn" else None
            return searcher.search(queries[ids[i]], mode=leg, k=depth, query_vector=vector)  # type: ignore[arg-type]

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            results = pool.map(one, range(len(ids)))
            for qid, result in tqdm(
                zip(ids, results, strict=True),
                total=len(ids),
                desc=f"{leg} leg",
                unit="q",
                disable=not progress,
            ):
                runs.hits[leg][qid] = [LegHit(h.id, h.score) for h in result.hits]
                share = encode_share_ms if leg == "knn" else 0.0
                runs.ms[leg][qid] = result.took_ms["request"] + share
                for hit in result.hits:
                    runs.texts.setdefault(hit.id, rerank_text(hit, contract.text_fields))
        runs.seconds[leg] = time.perf_counter() - leg_started
    return runs


def leg_mode(legs: LegRuns, leg: str) -> ModeRun:
    return ModeRun(
        {q: [h.id for h in hits] for q, hits in legs.hits[leg].items()}, dict(legs.ms[leg])
    )


def fused_mode(
    legs: LegRuns, method: str, *, rank_constant: int = 60, alpha: float = 0.5
) -> ModeRun:
    """Client-side fusion of the two legs; latency = both requests + the fusion itself."""
    out = ModeRun()
    for qid in legs.hits["keyword"]:
        pair = {"keyword": legs.hits["keyword"][qid], "knn": legs.hits["knn"].get(qid, [])}
        started = time.perf_counter()
        fused = (
            rrf(pair, rank_constant=rank_constant)
            if method in ("hybrid", "rrf")
            else weighted(pair, {"knn": alpha, "keyword": 1 - alpha})
        )
        fuse_ms = (time.perf_counter() - started) * 1000
        out.ranked[qid] = [f.id for f in fused]
        out.ms[qid] = legs.ms["keyword"][qid] + legs.ms["knn"].get(qid, 0.0) + fuse_ms
    return out


def server_rrf_mode(searcher: Searcher, queries: Mapping[str, str], *, depth: int = 100) -> ModeRun:
    out = ModeRun()
    for qid, text in queries.items():
        result = searcher.search(text, mode="hybrid", fusion="server", k=depth, window=depth)
        out.ranked[qid] = [h.id for h in result.hits]
        out.ms[qid] = result.took_ms["total"]
    return out


def reranked_mode(
    base: ModeRun, legs: LegRuns, queries: Mapping[str, str], reranker: CrossEncoder, top: int
) -> ModeRun:
    """Cross-encoder rerank of each query's top ``top`` ids; latency adds the scoring."""
    out = ModeRun()
    for qid, ranked in base.ranked.items():
        pool = ranked[:top]
        started = time.perf_counter()
        scores = reranker.score(queries[qid], [legs.texts.get(d, "") for d in pool])
        order = sorted(range(len(pool)), key=lambda i: -float(scores[i]))
        out.ranked[qid] = [pool[i] for i in order] + ranked[top:]
        out.ms[qid] = base.ms[qid] + (time.perf_counter() - started) * 1000
    return out


def summarise(
    run: ModeRun, qrels: Qrels, metrics: Sequence[str] = DEFAULT_METRICS
) -> dict[str, float]:
    """Metrics over ``qrels`` plus latency p50/p95 (ms)."""
    scores = evaluate(run.ranked, qrels, metrics)
    latencies = list(run.ms.values())
    return {**scores, "p50_ms": percentile(latencies, 0.5), "p95_ms": percentile(latencies, 0.95)}


def build_modes(
    modes: Sequence[str],
    legs: LegRuns,
    queries: Mapping[str, str],
    *,
    searcher: Searcher,
    alpha: float = 0.5,
    rank_constant: int = 60,
    reranker: CrossEncoder | None = None,
    rerank_top: int = 20,
    depth: int = 100,
) -> dict[str, ModeRun]:
    """Every requested mode's run, from the legs (and server requests for ``server-rrf``)."""
    makers: dict[str, Callable[[], ModeRun]] = {
        "keyword": lambda: leg_mode(legs, "keyword"),
        "knn": lambda: leg_mode(legs, "knn"),
        "hybrid": lambda: fused_mode(legs, "rrf", rank_constant=rank_constant),
        "rrf": lambda: fused_mode(legs, "rrf", rank_constant=rank_constant),
        "weighted": lambda: fused_mode(legs, "weighted", alpha=alpha),
        "server-rrf": lambda: server_rrf_mode(searcher, queries, depth=depth),
    }
    out: dict[str, ModeRun] = {}
    for mode in check_modes(modes):
        base = mode.removesuffix("+rerank")
        run = out.get(base) or makers[base]()
        if mode.endswith("+rerank"):
            if reranker is None:
                raise ConfigError(f"mode {mode!r} needs a cross-encoder: pass --rerank MODEL")
            run = reranked_mode(run, legs, queries, reranker, rerank_top)
        out[mode] = run
    return out
