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
from functools import partial
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from es_semantic.errors import ConfigError
from es_semantic.evaluation.metrics import DEFAULT_METRICS, Qrels, evaluate, percentile
from es_semantic.schema.tuning import Tuning
from es_semantic.search.core import rerank_text
from es_semantic.search.fusion import LegHit, fuse_legs, interpolate
from es_semantic.search.request import SearchRequest
from es_semantic.search.searcher import Searcher
from es_semantic.search.tuned import apply_tuning

if TYPE_CHECKING:
    from es_semantic.encoding.reranker import CrossEncoder

LEG_MODES = ("keyword", "knn")
FUSED_MODES = ("hybrid", "rrf", "weighted", "adaptive", "zscore")
SPARSE = "sparse"  # the learned sparse leg: run when the searcher has the sparse model
SERVER_RRF = "server-rrf"  # the server's rrf retriever over the legs run (a licensed cluster)
ALL_MODES = (*LEG_MODES, SPARSE, *FUSED_MODES, SERVER_RRF)


@dataclass
class ModeRun:
    """Ranked ids and latency per query for one mode."""

    ranked: dict[str, list[str]] = field(default_factory=dict)
    ms: dict[str, float] = field(default_factory=dict)
    scores: dict[str, list[float]] = field(default_factory=dict)  # beside ranked, when known


@dataclass
class LegRuns:
    """The raw legs: hits with scores, latency, and passage texts seen (for reranking)."""

    hits: dict[str, dict[str, list[LegHit]]] = field(default_factory=dict)  # leg -> qid -> hits
    ms: dict[str, dict[str, float]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def check_modes(modes: Sequence[str]) -> list[str]:
    """Refuse an unknown mode. A fused mode may name its legs, ``weighted:keyword+knn``: a
    subset of the legs run (two-leg hybrid beside three-leg hybrid in one table)."""
    for mode in modes:
        base, _, legs = mode.removesuffix("+rerank").partition(":")
        if base not in ALL_MODES or (legs and base not in (*FUSED_MODES, SERVER_RRF)):
            raise ConfigError(
                f"mode {mode!r} is not one of {', '.join(ALL_MODES)} (optionally +rerank; "
                f"a fused mode may name its legs: {FUSED_MODES[0]}:keyword+knn)"
            )
        names = legs.split("+") if legs else []
        if legs and (len(set(names)) != len(names) or len(names) < 2
                     or not set(names) <= {*LEG_MODES, SPARSE}):  # fmt: skip
            raise ConfigError(
                f"mode {mode!r}: name two or three different legs of keyword, knn, sparse "
                "joined by +"
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
    """Keyword, kNN (query vectors encoded in one batch) and, when the searcher has a sparse
    model, the sparse leg, once per query; fused modes then fuse every leg run.

    ``concurrency`` > 1 sends that many requests at once (threads share the Searcher); it helps
    on a real cluster, not on a server that answers one request at a time.
    """
    contract = searcher.contract()
    runs = LegRuns()
    ids = list(queries)
    started = time.perf_counter()
    vectors = searcher.encoder.encode_queries([queries[q] for q in ids])
    encode_share_ms = (time.perf_counter() - started) * 1000 / max(len(ids), 1)
    names = (*LEG_MODES, SPARSE) if searcher.sparse_encoder is not None else LEG_MODES
    for leg in names:
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
                runs.ms[leg][qid] = (
                    result.took_ms["request"] + share + result.took_ms.get("sparse_encode", 0.0)
                )
                for hit in result.hits:
                    runs.texts.setdefault(hit.id, rerank_text(hit, contract.text_fields))
        runs.seconds[leg] = time.perf_counter() - leg_started
    return runs


def leg_mode(legs: LegRuns, leg: str) -> ModeRun:
    return ModeRun(
        {q: [h.id for h in hits] for q, hits in legs.hits[leg].items()},
        dict(legs.ms[leg]),
        {q: [h.score for h in hits] for q, hits in legs.hits[leg].items()},
    )


def fused_mode(
    legs: LegRuns, method: str, *, rank_constant: int = 60, alpha: float = 0.5,
    only: Sequence[str] | None = None,
) -> ModeRun:  # fmt: skip
    """Client-side fusion of every leg (``only``: of these legs); latency = the legs'
    requests + the fusion itself."""
    out = ModeRun()
    names = [leg for leg in legs.hits if only is None or leg in only]
    for qid in legs.hits[names[0]]:
        lists = {leg: legs.hits[leg].get(qid, []) for leg in names}
        started = time.perf_counter()
        fused = fuse_legs(method, lists, rank_constant=rank_constant, alpha=alpha)
        fuse_ms = (time.perf_counter() - started) * 1000
        out.ranked[qid] = [f.id for f in fused]
        out.scores[qid] = [f.score for f in fused]
        out.ms[qid] = sum(legs.ms[leg].get(qid, 0.0) for leg in names) + fuse_ms
    return out


def hybrid_fusion(legs: Sequence[str], tuning: Tuning | None) -> tuple[str, int, float]:
    """How a hybrid search over ``legs`` fuses on an index storing ``tuning`` (None: nothing
    stored), as ``fused_mode``'s method, rank constant and alpha: the search's own rule
    (:func:`es_semantic.search.tuned.apply_tuning`), fused on the client."""
    request = apply_tuning(SearchRequest("hybrid", mode="hybrid", legs=tuple(legs)), tuning)
    method = {"auto": "rrf", "server": "rrf", "linear": "weighted"}.get(request.fusion)
    return method or request.fusion, request.rank_constant, request.alpha


def hybrid_mode(legs: LegRuns, tuning: Tuning | None) -> ModeRun:
    """The hybrid run a search of an index storing ``tuning`` gives, over every leg."""
    method, rank_constant, alpha = hybrid_fusion(list(legs.hits), tuning)
    return fused_mode(legs, method, rank_constant=rank_constant, alpha=alpha)


def server_rrf_mode(
    searcher: Searcher, queries: Mapping[str, str], legs: Sequence[str], *, depth: int = 100,
    rank_constant: int = 60,
) -> ModeRun:  # fmt: skip
    """The server's rrf retriever over ``legs`` (keyword, knn, sparse), one request a query
    through the searcher's plan; refused in one line where the licence does not allow it."""
    out = ModeRun()
    for qid, text in queries.items():
        result = searcher.search(text, mode="hybrid", legs=list(legs), fusion="server", k=depth,
                                 window=depth, rank_constant=rank_constant)  # fmt: skip
        out.ranked[qid] = [h.id for h in result.hits]
        out.scores[qid] = [h.score for h in result.hits]
        out.ms[qid] = result.took_ms["total"]
    return out


@dataclass
class RerankScores:
    """Cross-encoder scores of each query's pool (the top ``top`` of a first stage)."""

    scores: dict[str, list[float]] = field(default_factory=dict)
    ms: dict[str, float] = field(default_factory=dict)


def rerank_scores(
    base: ModeRun, legs: LegRuns, queries: Mapping[str, str], reranker: CrossEncoder, top: int
) -> RerankScores:
    """Score each query's top ``top`` ids of ``base`` once (every blend weight reuses them)."""
    out = RerankScores()
    for qid, ranked in base.ranked.items():
        started = time.perf_counter()
        scores = reranker.score(queries[qid], [legs.texts.get(d, "") for d in ranked[:top]])
        out.scores[qid] = [float(s) for s in scores]
        out.ms[qid] = (time.perf_counter() - started) * 1000
    return out


def blended_mode(base: ModeRun, rerank: RerankScores, weight: float = 1.0) -> ModeRun:
    """The pool reordered by the cross-encoder blended with the first stage, as a search with
    ``rerank_weight=weight`` orders it (1: the cross-encoder alone; 0: the first stage)."""
    out = ModeRun()
    for qid, ranked in base.ranked.items():
        ce = rerank.scores[qid]
        pool = ranked[: len(ce)]
        first = base.scores.get(qid) or [-float(i) for i in range(len(ranked))]
        final = ce if weight == 1.0 else interpolate(first[: len(pool)], ce, weight)
        order = sorted(range(len(pool)), key=lambda i: (-final[i], i))
        out.ranked[qid] = [pool[i] for i in order] + ranked[len(pool) :]
        out.ms[qid] = base.ms[qid] + rerank.ms[qid]
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
    rerank_weight: float = 1.0,
    depth: int = 100,
    tuning: Tuning | None = None,
) -> dict[str, ModeRun]:
    """Every requested mode's run, from the legs (and server requests for ``server-rrf``);
    ``hybrid`` fuses as a search of the index does (``tuning``: what the index stores)."""
    makers: dict[str, Callable[[], ModeRun]] = {
        "keyword": lambda: leg_mode(legs, "keyword"),
        "knn": lambda: leg_mode(legs, "knn"),
        SPARSE: lambda: leg_mode(legs, SPARSE),
        "hybrid": lambda: hybrid_mode(legs, tuning),
        "rrf": lambda: fused_mode(legs, "rrf", rank_constant=rank_constant),
        "weighted": lambda: fused_mode(legs, "weighted", alpha=alpha),
        "adaptive": lambda: fused_mode(legs, "adaptive"),
        "zscore": lambda: fused_mode(legs, "zscore", alpha=alpha),
        SERVER_RRF: lambda: server_rrf_mode(  # every leg run
            searcher, queries, list(legs.hits), depth=depth, rank_constant=rank_constant
        ),
    }
    out: dict[str, ModeRun] = {}
    for mode in check_modes(modes):
        base = mode.removesuffix("+rerank")
        method, _, only = base.partition(":")
        if SPARSE in (method, *only.split("+")) and SPARSE not in legs.hits:
            raise ConfigError(f"mode {mode!r} needs the index's sparse model: add --sparse-model")
        if only and method != SERVER_RRF:
            named = only.split("+")
            settings = (method, rank_constant, alpha)
            if method == "hybrid":
                settings = hybrid_fusion(named, tuning)
            made: Callable[[], ModeRun] = partial(
                fused_mode, legs, settings[0], rank_constant=settings[1], alpha=settings[2],
                only=named,
            )  # fmt: skip
        elif only:  # the server's rrf retriever over the legs named
            made = partial(server_rrf_mode, searcher, queries, only.split("+"), depth=depth,
                           rank_constant=rank_constant)  # fmt: skip
        else:
            made = makers[method]
        run = out.get(base) or made()
        if mode.endswith("+rerank"):
            if reranker is None:
                raise ConfigError(f"mode {mode!r} needs a cross-encoder: pass --rerank MODEL")
            scores = rerank_scores(run, legs, queries, reranker, rerank_top)
            run = blended_mode(run, scores, rerank_weight)
        out[mode] = run
    return out
