"""es-semantic serve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from es_semantic.cli.common import (
    connection_options,
    cross_encoder,
    encoder,
    handle_errors,
    settings,
)
from es_semantic.errors import ConfigError, InputError, MissingDependencyError


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (loopback by default)")  # fmt: skip
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--index", "indices", multiple=True,
              help="an index clients may search (repeat); none: any")  # fmt: skip
@click.option("--rerank", "rerank_model", help="cross-encoder folder for /rerank and rerank")
@click.option("--api-key-file", type=click.Path(exists=True, dir_okay=False),
              help="API keys, one a line; then every route but /healthz and /readyz needs one "
              "(Authorization: Bearer KEY or X-API-Key)")  # fmt: skip
@click.option("--max-batch-tokens", type=click.IntRange(64), default=16_384, show_default=True,
              help="dynamic batching: tokens per forward pass")  # fmt: skip
@click.option("--max-wait-ms", type=click.FloatRange(0), default=0.0, show_default=True,
              help="dynamic batching: requests that arrive during a forward pass share the "
              "next; this adds a wait for more (for bursty, low concurrency)")  # fmt: skip
@click.option("--no-batching", is_flag=True, help="one forward pass per request")
@click.option("--max-queue", type=click.IntRange(1), default=512, show_default=True,
              help="requests waiting for the model before 429 (Retry-After)")  # fmt: skip
@click.option("--max-inputs", type=click.IntRange(1), default=512, show_default=True)
@click.option("--max-chars", type=click.IntRange(1), default=20_000, show_default=True)
@click.option("--cors-origin", "cors", multiple=True, help="allow browser calls from (off)")
@click.option("--eval-report", type=click.Path(exists=True, dir_okay=False),
              help="an `eval --json` report the playground shows as bar charts")  # fmt: skip
@click.option("--workers", type=click.IntRange(1, 1), default=1, show_default=True,
              help="processes (one for now: scale with replicas behind a balancer)")  # fmt: skip
@connection_options
@handle_errors
def serve_cmd(
    host: str,
    port: int,
    indices: tuple[str, ...],
    rerank_model: str | None,
    api_key_file: str | None,
    max_batch_tokens: int,
    max_wait_ms: float,
    max_queue: int,
    max_inputs: int,
    max_chars: int,
    cors: tuple[str, ...],
    no_batching: bool,
    eval_report: str | None,
    workers: int,
    **options: Any,
) -> None:
    """Serve embeddings (OpenAI and text-embeddings-inference shapes), rerank and search.

    POST /v1/embeddings, /embed, /rerank, /indices/{index}/search; GET /indices/{index},
    /healthz, /readyz, /metrics, /docs, and the playground at / (modes side by side, eval
    reports as bar charts). SIGTERM finishes the requests in flight.
    """
    try:
        import uvicorn

        from es_semantic.service.app import ServiceConfig, create_app
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "fastapi", "serve", "es-semantic serve") from exc
    state = settings(click.get_current_context(), options)
    keys: tuple[str, ...] = ()
    if api_key_file:
        keys = tuple(k.strip() for k in Path(api_key_file).read_text().splitlines() if k.strip())
        if not keys:
            raise ConfigError(f"--api-key-file {api_key_file} holds no key")
    reranker = None
    if rerank_model:
        reranker = cross_encoder(state, rerank_model)
    config = ServiceConfig(
        indices=indices, api_keys=keys, max_inputs=max_inputs, max_chars=max_chars,
        max_batch_tokens=max_batch_tokens, max_wait_ms=max_wait_ms, max_queue=max_queue,
        batching=not no_batching, cors_origins=cors,
        eval_report=read_eval_report(eval_report) if eval_report else None,
    )  # fmt: skip
    app = create_app(encoder(state), config=config, es_config=state.es_config(),
                     reranker=reranker)  # fmt: skip
    click.echo(f"es-semantic serving on http://{host}:{port} (docs at /docs)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30)


def read_eval_report(path: str) -> dict[str, Any]:
    """An ``eval --json`` report: {MODE: {METRIC: number}}; a clear error otherwise."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--eval-report {path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"--eval-report {path}:{exc.lineno}: not JSON ({exc.msg})") from None
    modes = report.items() if isinstance(report, dict) else ()
    if not modes or not all(
        isinstance(v, dict) and all(isinstance(x, int | float) for x in v.values())
        for _, v in modes
    ):
        raise InputError(
            f"--eval-report {path}: not an `es-semantic eval --json` report "
            '({"MODE": {"ndcg@10": 0.7, ...}, ...})'
        )
    return dict(report)
