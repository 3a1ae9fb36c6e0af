"""es-semantic serve."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from es_semantic.cli.common import (
    Settings,
    connection_options,
    cross_encoder,
    encoder,
    handle_errors,
    say_int8_hint,
    settings,
)
from es_semantic.cli.sparse_options import load_sparse, sparse_model_option
from es_semantic.config import ENV_VARS, ESConfig
from es_semantic.errors import ConfigError, InputError, MissingDependencyError
from es_semantic.service.settings import ServiceConfig

LIMITS = {  # serve option -> (ServiceConfig field, help); defaults are ServiceConfig's
    "--max-body-bytes": ("max_body_bytes", "request body limit (413 beyond)"),
    "--max-body-seconds": ("max_body_seconds", "seconds a request body may take to arrive "
                           "(408 beyond: a stalled client frees its connection)"),
    "--max-k": ("max_k", "largest k (and offset + k) a search may ask for"),
    "--max-window": ("max_window", "largest fusion window a search may ask for"),
    "--max-num-candidates": ("max_num_candidates", "largest kNN num_candidates"),
    "--max-rerank-top": ("max_rerank_top", "largest rerank pool (as search's)"),
    "--max-filter-values": ("max_filter_values", "values a search's filters may hold, "
                            "all fields together"),
    "--max-concurrent": ("max_concurrent", "searches and reranks in flight before 429 "
                         "(Retry-After)"),
    "--max-connections": ("max_connections", "open connections and requests per worker "
                          "before 503 (bounds the memory request bodies can take)"),
    "--max-images": ("max_images", "images in one embeddings request"),
    "--max-image-bytes": ("max_image_bytes", "bytes of one image sent (or thumbnailed)"),
    "--max-image-pixels": ("max_image_pixels", "pixels of one image, read from its header "
                           "before it is decoded"),
}  # fmt: skip
DEFAULTS = ServiceConfig()


def limit_options(func: Any) -> Any:
    """The service's caps as options (each a ServiceConfig field, with its default)."""
    for flag, (name, text) in reversed(LIMITS.items()):
        func = click.option(flag, name, type=click.IntRange(1), default=getattr(DEFAULTS, name),
                            show_default=True, help=text)(func)  # fmt: skip
    return func


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (loopback by default)")  # fmt: skip
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--index", "indices", multiple=True,
              help="an index clients may search (repeat); none: any")  # fmt: skip
@click.option("--rerank", "rerank_model", help="cross-encoder folder for /rerank and rerank")
@sparse_model_option(
    "the indices' sparse leg model, for mode=sparse and legs with sparse "
    "[default: for the indices named with --index, each one's own, found from its contract]"
)
@click.option("--image-model", type=click.Path(exists=True, file_okay=False),
              help="a CLIP folder: {\"image\"} inputs of /v1/embeddings and /embed, image "
              "indices, POST /indices/{index}/search/image")  # fmt: skip
@click.option("--image-root", "image_roots", multiple=True,
              type=click.Path(exists=True, file_okay=False),
              help="a folder the playground may show image hits from (repeat); nothing "
              "outside these folders is served")  # fmt: skip
@click.option("--api-key-file", type=click.Path(exists=True, dir_okay=False),
              help="API keys, one a line; then every route needs one (Authorization: Bearer "
              "KEY or X-API-Key) but the open ones, which hold no data: /healthz, /readyz, "
              "the playground page /, the API schema /openapi.json and its page /docs")  # fmt: skip
@click.option("--max-batch-tokens", type=click.IntRange(64), default=DEFAULTS.max_batch_tokens,
              show_default=True,
              help="dynamic batching: tokens per forward pass")  # fmt: skip
@click.option("--max-wait-ms", type=click.FloatRange(0), default=DEFAULTS.max_wait_ms,
              show_default=True,
              help="dynamic batching: requests that arrive during a forward pass share the "
              "next; this adds a wait for more (for bursty, low concurrency)")  # fmt: skip
@click.option("--no-batching", is_flag=True, help="one forward pass per request")
@click.option("--max-queue", type=click.IntRange(1), default=DEFAULTS.max_queue,
              show_default=True,
              help="requests waiting for the model before 429 (Retry-After)")  # fmt: skip
@click.option("--max-inputs", type=click.IntRange(1), default=DEFAULTS.max_inputs,
              show_default=True)  # fmt: skip
@click.option("--max-chars", type=click.IntRange(1), default=DEFAULTS.max_chars,
              show_default=True)  # fmt: skip
@click.option("--cors-origin", "cors", multiple=True, help="allow browser calls from (off)")
@click.option("--eval-report", type=click.Path(exists=True, dir_okay=False),
              help="an `eval --json` report the playground shows as bar charts")  # fmt: skip
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="worker processes sharing the port, each with its own model (memory x N); "
              "a GPU is better served by one worker with dynamic batching")  # fmt: skip
@limit_options
@connection_options
@handle_errors
def serve_cmd(
    host: str,
    port: int,
    indices: tuple[str, ...],
    rerank_model: str | None,
    sparse_model: str | None,
    image_model: str | None,
    image_roots: tuple[str, ...],
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
    limits = {name: options.pop(name) for name, _ in LIMITS.values()}
    state = settings(click.get_current_context(), options)
    params = {
        "indices": list(indices), "rerank_model": rerank_model, "api_key_file": api_key_file,
        "sparse_model": sparse_model, "image_model": image_model,
        "image_roots": [str(Path(r).resolve()) for r in image_roots],
        "max_batch_tokens": max_batch_tokens, "max_wait_ms": max_wait_ms,
        "max_queue": max_queue, "max_inputs": max_inputs, "max_chars": max_chars,
        "cors": list(cors), "no_batching": no_batching, "eval_report": eval_report, **limits,
    }  # fmt: skip
    if workers == 1:
        app = build_app(state, params)
        say_int8_hint(state)
        click.echo(f"es-semantic serving on http://{host}:{port} (docs at /docs)", err=True)
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30,
                    limit_concurrency=limits["max_connections"])  # fmt: skip
        return
    es_config = build_app(state, params, load_models=False)  # every option checked first
    say_int8_hint(state)  # once, here: not once per worker
    with worker_spec(state, params, es_config):
        click.echo(f"es-semantic serving on http://{host}:{port} with {workers} worker "
                   "processes (each loads the model)", err=True)  # fmt: skip
        uvicorn.run(f"{__name__}:app_from_spec", factory=True, workers=workers, host=host,
                    port=port, log_level="warning", timeout_graceful_shutdown=30,
                    limit_concurrency=limits["max_connections"])  # fmt: skip


SPEC_ENV = "ES_SEMANTIC_SERVE_SPEC"
SECRET_KEYS = ("api_key", "password", "bearer_token")


@contextlib.contextmanager
def worker_spec(state: Settings, params: dict[str, Any], es_config: ESConfig) -> Iterator[Path]:
    """What each worker process builds its app from: a 0600 temp file (removed at exit) whose
    path, and nothing secret, is in the workers' environment. The secrets the parent read from
    its own environment are taken out of it before the workers start (they inherit it)."""
    values = {k: v for k, v in state.values.items() if k not in SECRET_KEYS}
    spec = {"values": values, "params": params, "es": dataclasses.asdict(es_config)}
    handle, name = tempfile.mkstemp(prefix="es-semantic-serve-", suffix=".json")  # mode 0600
    path = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(spec, out)
        for key in SECRET_KEYS:
            os.environ.pop(ENV_VARS[key], None)
        if "@" in os.environ.get(ENV_VARS["url"], ""):  # credentials in the URL
            os.environ.pop(ENV_VARS["url"])
        os.environ[SPEC_ENV] = str(path)
        yield path
    finally:
        os.environ.pop(SPEC_ENV, None)
        path.unlink(missing_ok=True)


def app_from_spec() -> Any:
    """A worker's app, built from the spec file ``serve --workers N`` names in its environment."""
    spec = json.loads(Path(os.environ[SPEC_ENV]).read_text(encoding="utf-8"))
    return build_app(Settings(values=spec["values"]), spec["params"], es=ESConfig(**spec["es"]))


def build_app(
    state: Settings, params: dict[str, Any], *, load_models: bool = True, es: ESConfig | None = None
) -> Any:
    """The service app from the merged settings and the serve options (``load_models=False``:
    only check the options, returning the cluster's settings)."""
    try:
        from es_semantic.service.app import create_app
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
        image_roots=tuple(params.get("image_roots", ())),
        eval_report=read_eval_report(params["eval_report"]) if params["eval_report"] else None,
        **{name: params[name] for name, _ in LIMITS.values() if name in params},
    )  # fmt: skip
    es_config = es or state.es_config()
    if not load_models:
        return es_config
    reranker = cross_encoder(state, params["rerank_model"]) if params["rerank_model"] else None
    sparse = load_sparse(state, params.get("sparse_model"))
    images = None
    if params.get("image_model"):
        from es_semantic.encoding.images import ImageEncoder

        images = ImageEncoder(params["image_model"])
    return create_app(encoder(state), config=config, es_config=es_config, reranker=reranker,
                      sparse_encoder=sparse, image_encoder=images)  # fmt: skip


def read_eval_report(path: str) -> dict[str, Any]:
    """An ``eval --json`` report: {MODE: {METRIC: number}}; a clear error otherwise."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--eval-report {path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"--eval-report {path}:{exc.lineno}: not JSON ({exc.msg})") from None
    if isinstance(report, dict):
        report.pop("encoder", None)  # the backend and precision of the run: not a mode
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
