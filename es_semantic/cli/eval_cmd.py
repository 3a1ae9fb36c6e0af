"""es-semantic eval: nDCG/recall/MRR/MAP and latency per mode, from one pass over each leg."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from es_semantic.cli.common import (
    client,
    connection_options,
    cross_encoder,
    encoder,
    handle_errors,
    settings,
)
from es_semantic.cli.indexing_cmds import chunk_options, chunking_options
from es_semantic.cli.sparse_options import load_sparse, sparse_model_option
from es_semantic.errors import ConfigError, InputError, MissingDependencyError
from es_semantic.evaluation.data import beir_paths, load_qrels, load_queries
from es_semantic.evaluation.metrics import DEFAULT_METRICS
from es_semantic.evaluation.runner import build_modes, check_modes, run_legs, summarise
from es_semantic.evaluation.tuned_report import TuneInputs, rerank_gain_lines, tune_and_save
from es_semantic.indexing.indexer import Indexer
from es_semantic.indexing.readers import InputFormat, count_records, read_path
from es_semantic.schema.tuning import tuning_from_mapping_response
from es_semantic.search.searcher import Searcher

DEFAULT_MODES = "keyword,knn,hybrid,weighted,adaptive"


def beir_index_name(folder: str, chunking: dict[str, Any] | None = None) -> str:
    """``../data/scifact`` -> ``beir-scifact`` (a valid, lowercase index name); chunked:
    ``beir-scifact-passages[-TOKENS]``."""
    name = re.sub(r"[^a-z0-9_-]+", "-", Path(folder).resolve().name.lower()).strip("-_")
    suffix = ""
    if chunking:
        tokens = chunking.get("chunk_tokens")
        suffix = "-passages" + (f"-{tokens}" if tokens else "")
    return f"beir-{name or 'corpus'}{suffix}"


@click.command("eval")
@click.argument("index", required=False)
@click.option(
    "--beir",
    "beir_dir",
    type=click.Path(file_okay=False),
    help="BEIR folder; indexes its corpus first",
)
@click.option("--split", default="test", show_default=True, help="BEIR qrels split")
@click.option("--index", "index_opt", help="index for --beir [beir-<folder name>]")
@click.option(
    "--queries", "queries_file", type=click.Path(dir_okay=False), help="queries JSONL or TSV"
)
@click.option(
    "--qrels", "qrels_file", type=click.Path(dir_okay=False), help="qrels (BEIR TSV or TREC)"
)
@click.option(
    "--index-corpus",
    "corpus_file",
    type=click.Path(exists=True),
    help="index this corpus (BEIR corpus.jsonl or any indexable file) into INDEX first",
)
@click.option(
    "--modes",
    default=DEFAULT_MODES,
    show_default=True,
    help="comma list of keyword, knn, sparse, hybrid (as search fuses), rrf, weighted, "
    "adaptive, zscore, server-rrf; +rerank each (with --sparse-model the fused modes fuse "
    "all three legs; MODE:LEG+LEG fuses the legs named, e.g. weighted:keyword+knn)",
)
@sparse_model_option("the index's sparse model: runs the sparse leg (mode sparse) and fuses it")
@click.option(
    "--depth", type=click.IntRange(10, 1000), default=100, show_default=True, help="hits per leg"
)
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option("--rank-constant", type=click.IntRange(1), default=60, show_default=True)
@click.option("--rerank", "rerank_model", help="cross-encoder folder for the +rerank modes")
@click.option("--rerank-top", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option(
    "--rerank-weight",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    help="+rerank modes: blend weight (0 = first stage only, 1 = cross-encoder only)",
)
@click.option(
    "--tune",
    is_flag=True,
    help="sweep alpha, rank constant, adaptive (and with --rerank the blend weight) on part of "
    "the queries; report on the rest",
)
@click.option(
    "--save",
    is_flag=True,
    help="with --tune: store the tuned fusion (and rerank weight) in INDEX's _meta, used by "
    "searches with --fusion auto",
)
@click.option(
    "--tune-fraction",
    type=click.FloatRange(0.1, 0.9),
    default=0.5,
    show_default=True,
    help="share of queries tuned on; the rest reports the gain",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="requests in flight (helps on a real cluster; the local server answers one at a time)",
)
@click.option("--limit-queries", type=click.IntRange(1), help="evaluate only the first N queries")
@click.option(
    "--analyzer",
    default="english",
    show_default=True,
    help="BM25 analyzer when --beir creates the index",
)
@chunk_options
@click.option(
    "--plot", type=click.Path(dir_okay=False), help="write a PNG bar chart (needs matplotlib)"
)
@click.option("--json", "as_json", is_flag=True, help="JSON output")
@click.option("--quiet", is_flag=True, help="no progress bars")
@connection_options
@handle_errors
def eval_cmd(
    index: str | None,
    beir_dir: str | None,
    split: str,
    index_opt: str | None,
    queries_file: str | None,
    qrels_file: str | None,
    corpus_file: str | None,
    modes: str,
    sparse_model: str | None,
    depth: int,
    alpha: float,
    rank_constant: int,
    rerank_model: str | None,
    rerank_top: int,
    rerank_weight: float,
    tune: bool,
    save: bool,
    tune_fraction: float,
    concurrency: int,
    limit_queries: int | None,
    analyzer: str,
    plot: str | None,
    as_json: bool,
    quiet: bool,
    **options: Any,
) -> None:
    """Evaluate retrieval modes of INDEX on queries + qrels (or a BEIR folder) side by side."""
    chunking = chunking_options(options)
    state = settings(click.get_current_context(), options)
    if save and not tune:
        raise click.UsageError("--save stores what --tune finds: add --tune")
    mode_list = check_modes([m.strip() for m in modes.split(",") if m.strip()])
    index, queries, qrels, sources = _inputs(
        index, beir_dir, split, index_opt, queries_file, qrels_file, chunking
    )
    if limit_queries:
        queries = dict(list(queries.items())[:limit_queries])
    qrels = {q: r for q, r in qrels.items() if q in queries}
    if not qrels:
        raise InputError("no query of the queries file has qrels: check the ids and --split")
    queries = {q: queries[q] for q in qrels}
    es, enc = client(state), encoder(state)
    sparse = load_sparse(state, sparse_model)
    corpus = str(beir_paths(beir_dir, split)[0]) if beir_dir else corpus_file
    if corpus and getattr(enc, "multimodal", False):
        raise ConfigError(f"{corpus}: eval indexes text documents and {state.model()} is a CLIP "
                          "model: index images with `index --format images`, then run eval "
                          "INDEX --queries FILE --qrels FILE")  # fmt: skip
    if corpus:
        indexer = Indexer(
            es, index, enc, analyzer=analyzer, progress=not quiet, sparse_encoder=sparse,
            dead_letter=f"{index}.dead.jsonl", **chunking,
        )  # fmt: skip
        fmt: InputFormat | None = "beir" if corpus.endswith("corpus.jsonl") else None
        report = indexer.index(
            read_path(corpus, fmt, indexer.field_spec()), total=count_records(corpus, fmt)
        )
        _log(
            f"indexed {report.indexed}, skipped {report.skipped} unchanged, "
            f"failed {report.failed}, encoded {report.encoded} ({report.truncated} truncated, "
            f"{report.chunked} chunked into {report.passages} passages) in {report.seconds:.1f}s",
            as_json,
        )
    reranker = None
    if rerank_model:
        reranker = cross_encoder(state, rerank_model)
    searcher = Searcher(es, index, enc, sparse_encoder=sparse)
    legs = run_legs(searcher, queries, depth=depth, progress=not quiet, concurrency=concurrency)
    for leg, seconds in legs.seconds.items():
        _log(
            f"{leg} leg: {len(queries)} queries in {seconds:.1f}s "
            f"({1000 * seconds / len(queries):.0f} ms/query)",
            as_json,
        )
    runs = build_modes(
        mode_list,
        legs,
        queries,
        searcher=searcher,
        alpha=alpha,
        rank_constant=rank_constant,
        reranker=reranker,
        rerank_top=rerank_top,
        rerank_weight=rerank_weight,
        depth=depth,
        tuning=tuning_from_mapping_response(es.indices.get_mapping(index=index).body),
    )
    table = {
        mode: {k: round(v, 4) for k, v in summarise(run, qrels).items()}
        for mode, run in runs.items()
    }
    if as_json:
        # beside the modes: the backend and precision the queries (and corpus) were encoded at
        click.echo(json.dumps({**table, "encoder": enc.config.ran()}, indent=2))
    else:
        click.echo(format_table(table, len(qrels)))
    for line in rerank_gain_lines(runs, qrels):
        _log(line, as_json)
    if tune:
        inputs = TuneInputs(legs, queries, qrels, sources, tune_fraction, reranker, rerank_top)
        for line in tune_and_save(es, index, inputs, save=save):
            _log(line, as_json)
    if plot:
        write_plot(table, plot)


def _inputs(
    index: str | None,
    beir_dir: str | None,
    split: str,
    index_opt: str | None,
    queries_file: str | None,
    qrels_file: str | None,
    chunking: dict[str, Any],
) -> tuple[str, dict[str, str], dict[str, dict[str, int]], tuple[str, str]]:
    """The index, queries, qrels, and the names of the queries and qrels files."""
    if beir_dir:
        _, queries_path, qrels_path = beir_paths(beir_dir, split)
        name = index_opt or index or beir_index_name(beir_dir, chunking)
        files = (str(queries_path), str(qrels_path))
        return name, load_queries(queries_path), load_qrels(qrels_path), files
    if not (index and queries_file and qrels_file):
        raise ConfigError("eval needs INDEX --queries FILE --qrels FILE, or --beir DIR")
    files = (queries_file, qrels_file)
    return index, load_queries(queries_file), load_qrels(qrels_file), files


def _log(message: str, as_json: bool) -> None:
    click.echo(message, err=as_json)


def format_table(table: dict[str, dict[str, float]], n_queries: int) -> str:
    columns = [*DEFAULT_METRICS, "p50_ms", "p95_ms"]
    width = max(len(m) for m in table) + 2
    lines = [f"{'mode':<{width}}" + "".join(f"{c:>12}" for c in columns)]
    for mode, row in table.items():
        lines.append(
            f"{mode:<{width}}"
            + "".join(
                f"{row[c]:>12.1f}" if c.endswith("_ms") else f"{row[c]:>12.4f}" for c in columns
            )
        )
    lines.append(
        f"({n_queries} queries; latency of fused modes = both legs + fusion on the client)"
    )
    return "\n".join(lines)


def write_plot(table: dict[str, dict[str, float]], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "plot", "--plot") from exc
    modes = list(table)
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(modes), 4))
    width = 0.8 / len(DEFAULT_METRICS)
    for i, metric in enumerate(DEFAULT_METRICS):
        xs = [j + i * width for j in range(len(modes))]
        ax.bar(xs, [table[m][metric] for m in modes], width, label=metric)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(modes))], modes)
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("es-semantic eval")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
