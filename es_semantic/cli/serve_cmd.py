"""es-semantic serve."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from es_semantic.cli.common import (
    Settings,
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
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="worker processes sharing the port, each with its own model (memory x N); "
              "a GPU is better served by one worker with dynamic batching")  # fmt: skip
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
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "uvicorn", "serve", "es-semantic serve") from exc
    state = settings(click.get_current_context(), options)
    params = {
        "indices": list(indices), "rerank_model": rerank_model, "api_key_file": api_key_file,
        "max_batch_tokens": max_batch_tokens, "max_wait_ms": max_wait_ms,
        "max_queue": max_queue, "max_inputs": max_inputs, "max_chars": max_chars,
        "cors": list(cors), "no_batching": no_batching, "eval_report": eval_report,
    }  # fmt: skip
    if workers == 1:
        app = build_app(state, params)
        click.echo(f"es-semantic serving on http://{host}:{port} (docs at /docs)", err=True)
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30)
        return
    build_app(state, params, load_models=False)  # check every option before forking
    # Each worker process builds its own app (and model) from this spec; the settings reach
    # them through the environment, as the parent's own environment does, never on a command
    # line or in a log.
    os.environ[SPEC_ENV] = json.dumps({"values": state.values, "params": params})
    click.echo(f"es-semantic serving on http://{host}:{port} with {workers} worker processes "
               "(each loads the model)", err=True)  # fmt: skip
    uvicorn.run(f"{__name__}:app_from_environment", factory=True, workers=workers, host=host,
                port=port, log_level="warning", timeout_graceful_shutdown=30)  # fmt: skip


SPEC_ENV = "ES_SEMANTIC_SERVE_SPEC"


def app_from_environment() -> Any:
    """A worker's app, built from the spec ``serve --workers N`` left in the environment."""
    spec = json.loads(os.environ[SPEC_ENV])
    return build_app(Settings(values=spec["values"]), spec["params"])


def build_app(state: Settings, params: dict[str, Any], *, load_models: bool = True) -> Any:
    """The service app from the merged settings and the serve options (``load_models=False``:
    only check the options)."""
    try:
        from es_semantic.service.app import ServiceConfig, create_app
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "fastapi", "serve", "es-semantic serve") from exc
    keys: tuple[str, ...] = ()
    if params["api_key_file"]:
        path = Path(params["api_key_file"])
        keys = tuple(k.strip() for k in path.read_text().splitlines() if k.strip())
        if not keys:
            raise ConfigError(f"--api-key-file {path} holds no key")
    config = ServiceConfig(
        indices=tuple(params["indices"]), api_keys=keys, max_inputs=params["max_inputs"],
        max_chars=params["max_chars"], max_batch_tokens=params["max_batch_tokens"],
        max_wait_ms=params["max_wait_ms"], max_queue=params["max_queue"],
        batching=not params["no_batching"], cors_origins=tuple(params["cors"]),
        eval_report=read_eval_report(params["eval_report"]) if params["eval_report"] else None,
    )  # fmt: skip
    es_config = state.es_config()
    if not load_models:
        return None
    reranker = cross_encoder(state, params["rerank_model"]) if params["rerank_model"] else None
    return create_app(encoder(state), config=config, es_config=es_config, reranker=reranker)


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
