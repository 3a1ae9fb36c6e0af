"""The doctor's thin shell: gather the facts (cluster probe, model load, installed extras, the
index) for :func:`es_semantic.doctor.checks.diagnose`. Nothing here decides anything."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from elasticsearch import ApiError, Elasticsearch

from es_semantic.config import ESConfig
from es_semantic.doctor.facts import EXTRAS, READ_FAILED, Facts, IndexFacts, ModelFacts
from es_semantic.elastic.calls import run
from es_semantic.elastic.client import (
    CLIENT_VERSION,
    CONNECT_CHECK_TIMEOUT_S,
    connection_error,
    make_client,
    probe_cluster,
)
from es_semantic.errors import EsSemanticError
from es_semantic.indexing.admin import index_info_steps
from es_semantic.redact import redact


def gather(
    es_config: ESConfig,
    model: str | None,
    model_options: Mapping[str, Any],
    index: str | None = None,
) -> Facts:
    """Probe the cluster (version, licence), load the model, look for the extras and read
    ``index``; every failure becomes a one-line fact, never an exception."""
    es = make_client(es_config, check=False)
    # every request short and not retried: a hanging cluster is a fail line, soon
    quick = es.options(request_timeout=CONNECT_CHECK_TIMEOUT_S, max_retries=0)
    try:
        cluster, error = None, None
        try:
            cluster = probe_cluster(quick)
        except Exception as exc:  # every way of not answering: one line naming the URL
            error = str(connection_error(es_config, exc))
        index_facts = None if index is None else IndexFacts(index)  # not read: no answer
        if index is not None and error is None:
            index_facts = read_index(quick, index, es_config.secrets())
    finally:
        es.close()
    return Facts(
        es=es_config,
        client_version=CLIENT_VERSION,
        cluster=cluster,
        connection_error=error,
        model=load_model(model, model_options),
        missing_modules=missing_modules(),
        index=index_facts,
    )


def read_index(es: Elasticsearch, index: str, secrets: list[str]) -> IndexFacts:
    """``index_info`` of ``index``, or why it could not be read, in one line."""
    try:
        return IndexFacts(index, info=run(es, index_info_steps(index)))
    except EsSemanticError as exc:
        return IndexFacts(index, error=redact(str(exc), secrets))
    except ApiError as exc:
        return IndexFacts(index, error=redact(f"HTTP {exc.meta.status}: {exc.message}", secrets))
    except Exception as exc:  # a timeout, a dropped connection: still one line, not a crash
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return IndexFacts(index, error=redact(f"{READ_FAILED}: {type(exc).__name__}: "
                                              f"{first}", secrets))  # fmt: skip


def load_model(model: str | None, options: Mapping[str, Any]) -> ModelFacts:
    """Load the model as the other commands would; its failure is the fact."""
    if model is None:
        source = "packaged"
    else:
        source = "folder" if Path(model).expanduser().is_dir() else "hub"
    try:
        from es_semantic.encoding.accelerators import accelerators
        from es_semantic.encoding.encoder import Encoder

        gpus = tuple(accelerators())
        encoder = Encoder(model, **options)
    except EsSemanticError as exc:
        return ModelFacts(model, source, error=str(exc))
    except Exception as exc:  # a broken folder or install: still one line
        return ModelFacts(model, source, error=f"{type(exc).__name__}: {exc}")
    device = str(encoder.device)
    return ModelFacts(model, source, encoder.config, device, encoder.precision, gpus)


def missing_modules() -> frozenset[str]:
    """The modules of the optional extras that are not installed (nothing is imported)."""
    wanted = {module for modules, _ in EXTRAS.values() for module in modules}
    return frozenset(m for m in wanted if importlib.util.find_spec(m) is None)
