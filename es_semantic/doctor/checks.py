"""What the doctor concludes from the facts it gathered (pure: no I/O, unit-tested).

Facts come from :mod:`es_semantic.doctor.gather`; :func:`diagnose` turns them into
:class:`~es_semantic.doctor.findings.Finding` lines, each not-ok line saying what to do."""

from __future__ import annotations

from typing import Any

from es_semantic.config import EncoderConfig
from es_semantic.doctor.cluster_checks import cluster_findings, connection_findings
from es_semantic.doctor.facts import EXTRAS, READ_FAILED, Facts, IndexFacts, ModelFacts
from es_semantic.doctor.findings import Finding
from es_semantic.errors import IndexContractError
from es_semantic.schema.contract import META_KEY, IndexContract


def diagnose(facts: Facts) -> list[Finding]:
    """Every finding, in screen order: connection, cluster, model, extras, index."""
    found = connection_findings(facts.es, facts.connection_error)
    config = facts.model.config
    if facts.cluster is not None:
        found += cluster_findings(facts.cluster, facts.client_version, config)
    found += model_findings(facts.model)
    found += extras_findings(facts.missing_modules)
    if facts.index is not None and facts.connection_error is not None:
        found.append(Finding(f"index {facts.index.name}", "contract", "warn",
                             "not checked: the cluster did not answer",
                             "fix the connection line above, then run doctor again"))  # fmt: skip
    elif facts.index is not None:
        found += index_findings(facts.index, config)
    return found


def model_findings(model: ModelFacts) -> list[Finding]:
    """Where the model came from, what its vectors are, where it runs."""
    if model.config is None:
        fix = "pass a model folder or hub id with --model / ES_SEMANTIC_MODEL"
        if model.error and "pip install" in model.error:
            fix = "run the pip command above, or pass --model / ES_SEMANTIC_MODEL"
        return [Finding("model", "loads", "fail", model.error or "the model did not load", fix)]
    c = model.config
    source = {
        "packaged": f"the packaged default ('models' extra) at {c.model_path}",
        "hub": f"hub id {model.requested}, cached at {c.model_path}",
    }.get(model.source, f"the folder {c.model_path}")
    prefixes = f"query {c.query_prefix!r}, document {c.document_prefix!r}"
    gpus = ", ".join(model.gpus) or "none"
    return [
        Finding("model", "loads", "ok", f"{c.model_name} from {source}", value=c.model_name),
        Finding(
            "model",
            "vectors",
            "ok",
            f"{c.dim}-d, {c.pooling} pooling, normalize {c.normalize}, max_length "
            f"{c.max_length}, prefixes {prefixes}",
            value={
                "dims": c.dim,
                "pooling": c.pooling,
                "normalize": c.normalize,
                "max_length": c.max_length,
                "fingerprint": c.fingerprint,
            },
        ),
        Finding(
            "model",
            "runtime",
            "ok",
            f"{c.backend} on {model.device} ({model.precision}); GPUs seen: {gpus}",
            value={
                "backend": c.backend,
                "device": model.device,
                "precision": model.precision,
                "gpus": list(model.gpus),
            },
        ),
    ]


def extras_findings(missing_modules: frozenset[str]) -> list[Finding]:
    """One line for the installed extras, one per missing extra with its pip command."""
    absent = {name for name, (mods, _) in EXTRAS.items() if set(mods) & missing_modules}
    here = [name for name in EXTRAS if name not in absent]
    found = [Finding("extras", "installed", "ok", ", ".join(here) or "none", value=here)]
    for name in EXTRAS:
        if name in absent:
            found.append(
                Finding(
                    "extras",
                    name,
                    "warn",
                    f"not installed: {EXTRAS[name][1]}",
                    f"pip install 'es-semantic[{name}]'",
                )
            )
    return found


def index_findings(index: IndexFacts, config: EncoderConfig | None) -> list[Finding]:
    """The index's contract, layout and count, and whether this model can query it."""
    section = f"index {index.name}"
    if index.info is None:
        fix = "check the name, or create it with `es-semantic index` / `create-index`"
        if (index.error or "").startswith(READ_FAILED):  # not an answer about the index
            fix = "check the cluster's health, then run doctor again"
        return [Finding(section, "contract", "fail", index.error or "unreadable", fix)]
    info = index.info
    try:
        contract = IndexContract.from_meta({META_KEY: info["contract"]}, index.name)
    except IndexContractError as exc:
        return [Finding(section, "contract", "fail", str(exc), "re-create the index")]
    found = [
        Finding(
            section,
            "contract",
            "ok",
            f"{contract.model_name} ({contract.model_fingerprint}), {contract.dims}-d "
            f"{contract.similarity}, {contract.pooling} pooling",
            value=info["contract"],
        ),
        Finding(
            section,
            "layout",
            "ok",
            _layout(contract, info),
            value={"chunking": contract.chunking, "index_options": info["index_options"]},
        ),
        Finding(
            section,
            "documents",
            "ok",
            _count(contract, info),
            value={"count": info["count"], "vectors": info["vectors"]},
        ),
    ]
    if contract.sparse is not None:
        leg = contract.sparse
        where = leg.model_path or leg.model_package  # recorded where the model was read (#28)
        how = (f"its model found from {where} (if it is still there), or --sparse-model"
               if where else f"search it with --sparse-model {leg.model_name}")  # fmt: skip
        found.append(Finding(section, "sparse leg", "ok",
                             f"{leg.model_name} ({leg.model_fingerprint}) in {leg.field}: {how}",
                             value={"model": leg.model_name, "field": leg.field}))  # fmt: skip
    if config is not None:
        found.append(_compatibility(section, index.name, contract, config))
    else:
        found.append(Finding(section, "this model", "warn", "not checked: the model did not load",
                             "fix the model line above, then run doctor again"))  # fmt: skip
    return found


def _layout(contract: IndexContract, info: dict[str, Any]) -> str:
    layout = (
        f"passages of {contract.chunk_tokens} tokens (overlap {contract.chunk_overlap}), nested kNN"
        if contract.nested
        else "one vector per document"
    )
    options = info["index_options"]
    meta = ", ".join(f"{k}:{v}" for k, v in contract.metadata_fields.items()) or "-"
    text = ", ".join(contract.text_fields)
    return f"{layout}; {options['type']} ({options['from']}); text {text}; metadata {meta}"


def _count(contract: IndexContract, info: dict[str, Any]) -> str:
    extra = f" ({info['vectors']} passage vectors)" if contract.nested else ""
    return f"{info['count']} documents{extra}"


def _compatibility(
    section: str, name: str, contract: IndexContract, config: EncoderConfig
) -> Finding:
    """Whether this model can query (and feed) the index; another model is flagged."""
    query = contract.differences(config, for_indexing=False)
    if query:
        return Finding(
            section,
            "this model",
            "fail",
            f"cannot query it: {'; '.join(query)}",
            f"use the model it was built with (--model {contract.model_name}), or "
            f"re-encode it with `es-semantic migrate --from {name} --model MODEL`",
            value={"query": False, "index": False},
        )
    feed = contract.differences(config, for_indexing=True)
    if feed:
        return Finding(
            section,
            "this model",
            "warn",
            f"queries it, but indexing into it is refused: {'; '.join(feed)}",
            "index with the options it was built with (see `es-semantic info`)",
            value={"query": True, "index": False},
        )
    return Finding(
        section,
        "this model",
        "ok",
        "queries and indexes it (same contract)",
        value={"query": True, "index": True},
    )
