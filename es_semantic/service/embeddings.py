"""Embedding and rerank routes: OpenAI ``/v1/embeddings``, text-embeddings-inference
``/embed`` and ``/rerank``, each beside its request model."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, Field

from es_semantic.schema.similarity import unit_rows
from es_semantic.service.batcher import Kind
from es_semantic.service.images import Item, TextItem, embed_items, has_items, image_encoder
from es_semantic.service.state import HTTPProblem, ServiceState, check_inputs, service_state

router = APIRouter()
State = Annotated[ServiceState, Depends(service_state)]


IDS_REFUSED = (
    "input holds token ids, which belong to another tokenizer: send the texts "
    "(LangChain's OpenAIEmbeddings: check_embedding_ctx_length=False)"
)


class OpenAIEmbeddingRequest(BaseModel):
    # {"text"}/{"image"} items: the CLIP model (service/images.py); token ids: refused, named
    input: str | list[Item] | list[int] | list[list[int]]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None
    input_type: Kind = Field("document", description="es-semantic: query or document prefix")


@router.post("/v1/embeddings")
async def openai_embeddings(body: OpenAIEmbeddingRequest, state: State) -> dict[str, Any]:
    """OpenAI-compatible embeddings (``openai.OpenAI(base_url=...).embeddings.create``);
    ``{"text": ...}`` and ``{"image": BASE64}`` items go to the CLIP model, in one space."""
    given = [body.input] if isinstance(body.input, str) else body.input
    if not given or body.input == "":  # OpenAI refuses both
        raise HTTPProblem(400, "input is empty: send a non-empty text or a list of them")
    inputs: list[Item] = []
    for x in given:
        if isinstance(x, int | list):
            raise HTTPProblem(400, IDS_REFUSED)
        inputs.append(x)
    clip = has_items(inputs)
    model = image_encoder(state) if clip else state.encoder
    if body.dimensions is not None and body.dimensions != model.dim:
        raise HTTPProblem(400, f"dimensions={body.dimensions}: this model gives {model.dim}")
    if clip:
        vectors = await embed_items(state, inputs)
        texts = [x.text for x in inputs if isinstance(x, TextItem)]
    else:
        texts = check_inputs([str(x) for x in inputs], state.config)
        vectors = await state.embed(texts, body.input_type)
    tokens = sum(len(t.split()) for t in texts)
    data = [
        {"object": "embedding", "index": i, "embedding": _encode_vector(v, body.encoding_format)}
        for i, v in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": body.model or model.config.model_name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


class EmbedRequest(BaseModel):
    inputs: str | list[Item]  # {"text"}/{"image"} items: the CLIP model (service/images.py)
    normalize: bool = True
    truncate: bool = False
    truncation_direction: str = "Right"
    prompt_name: str | None = None


# prompt names (TEI: the model's ``prompts`` keys) -> what the model is told the text is; the
# document's other names are those model folders use for its prompt (encoding/model_folder.py)
PROMPT_KINDS: dict[str, Kind] = {"query": "query", "document": "document", "passage": "document",
                                 "corpus": "document", "doc": "document"}  # fmt: skip


def _embed_kind(body: EmbedRequest) -> Kind:
    """The prompt ``prompt_name`` names (the document's when none: es-semantic's default), after
    the options the service cannot honour are refused (422, as TEI refuses a bad option)."""
    if body.truncation_direction.lower() != "right":
        asked = body.truncation_direction[:20]
        raise HTTPProblem(422, f"truncation_direction {asked!r}: the model keeps a text's "
                          "first tokens; send Right or leave it out")  # fmt: skip
    if body.prompt_name is None:
        return "document"
    kind = PROMPT_KINDS.get(body.prompt_name)
    if kind is None:
        raise HTTPProblem(422, f"prompt_name {body.prompt_name[:40]!r} is not one of this "
                          f"model's prompts: {', '.join(PROMPT_KINDS)}")  # fmt: skip
    return kind


@router.post("/embed")
async def tei_embed(body: EmbedRequest, state: State) -> Response:
    """text-embeddings-inference ``/embed``: one vector per input; ``{"text": ...}`` and
    ``{"image": BASE64}`` items go to the CLIP model (normalised, in one space)."""
    inputs = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    if not inputs:  # TEI: 400 "`inputs` cannot be empty"
        raise HTTPProblem(400, "inputs is empty: send a text or a list of them")
    kind = _embed_kind(body)
    if has_items(inputs):
        if not body.normalize:
            raise HTTPProblem(422, "normalize=false: image and text items are CLIP vectors, "
                              "unit length in one space; leave normalize out")  # fmt: skip
        vectors = await embed_items(state, inputs)
        return Response(json.dumps(vectors.tolist()), media_type="application/json")
    texts = check_inputs([str(x) for x in inputs], state.config)
    config = state.encoder.config
    window = config.max_length
    prefix = config.query_prefix if kind == "query" else config.document_prefix
    # what the model reads is prefix + text; a token holds at least one UTF-8 byte (byte-level
    # BPE splits a CJK character into up to three): only those longer in bytes can overflow
    read = [prefix + t for t in texts]
    if not body.truncate and any(len(t.encode()) + 2 > window for t in read):
        counts = await asyncio.to_thread(state.encoder.count_tokens, read)
        for i, count in enumerate(counts):
            if count > window:
                raise HTTPProblem(413, f"input #{i} has {count} tokens with the model's "
                                  f"prefix, over its {window}: shorten it or send "
                                  "truncate=true")  # fmt: skip
    vectors = await state.embed(texts, kind)
    if body.normalize:
        vectors = unit_rows(vectors)
    return Response(json.dumps(vectors.tolist()), media_type="application/json")


class RerankRequest(BaseModel):
    query: str
    texts: list[str]
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool = False


@router.post("/rerank")
async def tei_rerank(body: RerankRequest, state: State) -> list[dict[str, Any]]:
    """text-embeddings-inference ``/rerank``: texts by relevance to the query, best first."""
    reranker = state.reranker
    if reranker is None:
        raise HTTPProblem(404, "no reranker is configured: start the service with --rerank")
    check_inputs([body.query], state.config, what="query")
    texts = check_inputs(body.texts, state.config)
    if not texts:
        raise HTTPProblem(400, "texts is empty: send the passages to rank")
    window = int(getattr(reranker, "max_length", 0))
    # a token holds at least one UTF-8 byte: only long pairs can overflow the window
    query_bytes = len(body.query.encode())
    if not body.truncate and window and any(query_bytes + len(t.encode()) + 3 > window
                                            for t in texts):  # fmt: skip
        counts = await asyncio.to_thread(reranker.count_tokens, body.query, texts)
        for i, count in enumerate(counts):
            if count > window:
                raise HTTPProblem(413, f"text #{i} with the query has {count} tokens, over "
                                  f"the reranker's {window}: shorten it or send "
                                  "truncate=true")  # fmt: skip
    with state.slot():
        started = time.perf_counter()
        logits = await asyncio.to_thread(reranker.score, body.query, texts)
        state.metrics.stage("rerank", time.perf_counter() - started)
    scores = _tei_scores(logits, getattr(reranker, "activation", "none"), body.raw_scores)
    order = sorted(range(len(texts)), key=lambda i: -float(scores[i]))
    return [{"index": i, "score": float(scores[i]),
             **({"text": texts[i]} if body.return_text else {})} for i in order]  # fmt: skip


def _tei_scores(scores: np.ndarray, activation: str, raw: bool) -> np.ndarray:
    """TEI's scores: the sigmoid of the model's logit, or the logit itself with
    ``raw_scores`` (a two-label head's logit difference: its sigmoid is the softmax)."""
    wide = scores.astype(np.float64)
    if activation == "sigmoid":  # the reranker already gives probabilities
        if not raw:
            return wide
        wide = np.clip(wide, 1e-12, 1 - 1e-12)
        return np.asarray(np.log(wide / (1 - wide)))
    return wide if raw else np.asarray(1.0 / (1.0 + np.exp(-wide)))


def _encode_vector(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return [float(x) for x in vector]
