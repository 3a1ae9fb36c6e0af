"""The service's request shapes against what the APIs it imitates document: TEI's /rerank
scores (sigmoid unless raw_scores), empty inputs refused as OpenAI and TEI refuse them, and
search filters within caps, each value checked before it reaches the cluster."""

from __future__ import annotations

import numpy as np
import pytest

from es_semantic import CrossEncoder, Indexer
from tests.integration.test_service import call, running

pytest.importorskip("uvicorn", reason="the serve extra is not installed")
from es_semantic.service.app import ServiceConfig, create_app

TEXTS = ["cat dog", "search engine", "river"]


def test_tei_rerank_scores_are_the_sigmoid_unless_raw_scores(tiny, tiny_cross_encoder_dir):
    """TEI applies the sigmoid to a one-label reranker's logit unless ``raw_scores``."""
    reranker = CrossEncoder(tiny_cross_encoder_dir)
    logits = reranker.score("search", TEXTS).astype(np.float64)
    with running(create_app(tiny, reranker=reranker)) as url:
        status, ranked, _ = call(f"{url}/rerank", {"query": "search", "texts": TEXTS})
        assert status == 200, ranked
        got = {r["index"]: r["score"] for r in ranked}
        assert all(0.0 < s < 1.0 for s in got.values()), ranked
        assert np.allclose([got[i] for i in range(3)], 1 / (1 + np.exp(-logits)), atol=1e-5)
        body = {"query": "search", "texts": TEXTS, "raw_scores": True}
        status, ranked, _ = call(f"{url}/rerank", body)
        assert status == 200
        got = {r["index"]: r["score"] for r in ranked}
        assert np.allclose([got[i] for i in range(3)], logits, atol=1e-5)


@pytest.mark.parametrize(
    ("path", "body"),
    [("/v1/embeddings", {"input": []}), ("/v1/embeddings", {"input": ""}),
     ("/embed", {"inputs": []}), ("/rerank", {"query": "search", "texts": []})],
)  # fmt: skip
def test_empty_inputs_are_refused_in_one_line(tiny, tiny_cross_encoder_dir, path, body):
    app = create_app(tiny, reranker=CrossEncoder(tiny_cross_encoder_dir))
    with running(app) as url:
        status, answer, _ = call(f"{url}{path}", body)
        assert status == 400 and "empty" in answer["error"] and "\n" not in answer["error"]


@pytest.fixture
def with_metadata(es, index_name, tiny):
    docs = [{"id": str(i), "text": t, "lang": "en", "year": 2020 + i}
            for i, t in enumerate(["search engine", "banana river"])]  # fmt: skip
    Indexer(es, index_name, tiny, chunking="none", metadata_fields=["lang", "year"]).index(docs)
    return index_name


@pytest.mark.parametrize(
    ("filters", "status", "named"),
    [({"lang": ["en"] * 9}, 422, "max-filter-values"),
     ({"lang": ["en"] * 5, "year": [2020] * 4}, 422, "max-filter-values"),
     ({"lang": "e" * 101}, 413, "100"),
     ({"year": {"gte": {"script": "x"}}}, 400, "'year'"),
     ({"year": {"gte": [2020, 2021]}}, 400, "'year'"),
     ({"lang": {"exists": "yes"}}, 400, "'lang'")],
)  # fmt: skip
def test_search_filters_are_capped_and_checked_before_the_cluster(
    es_server, with_metadata, tiny, filters, status, named
):
    config = ServiceConfig(max_filter_values=8, max_chars=100)
    with running(create_app(tiny, config=config, es_config=es_server.config)) as url:
        search = f"{url}/indices/{with_metadata}/search"
        got, body, _ = call(search, {"query": "search", "filters": filters})
        assert got == status and named in body["error"] and "\n" not in body["error"], body
        ok = {"lang": ["en"] * 4, "year": {"gte": 2020, "lt": 2030}}
        got, body, _ = call(search, {"query": "search", "filters": ok})
        assert got == 200 and len(body["hits"]) == 2, body


def test_a_search_the_index_cannot_answer_is_the_clients_error_not_a_bad_gateway(
    es_server, with_metadata, tiny
):
    """The sparse leg asked of an index without one: a 400 naming what to do (a 502 said the
    cluster failed, and clients retry those)."""
    with running(create_app(tiny, es_config=es_server.config)) as url:
        search = f"{url}/indices/{with_metadata}/search"
        status, body, _ = call(search, {"query": "search", "mode": "sparse"})
        assert status == 400 and "no sparse leg" in body["error"], body


def test_a_refusal_does_not_echo_what_the_client_sent(es_server, tiny):
    """An unknown field name or an index name is named clipped, never sent back whole."""
    long = "k" * 10_000
    with running(create_app(tiny, es_config=es_server.config)) as url:
        status, body, _ = call(f"{url}/indices/docs/search", {"query": "search", long: 1})
        assert status == 422 and "Extra inputs" in body["error"], body
        assert len(body["error"]) < 400, len(body["error"])
        status, body, _ = call(f"{url}/indices/{long}/search", {"query": "search"})
        assert status == 400 and "255" in body["error"] and len(body["error"]) < 400, body
        status, body, _ = call(f"{url}/indices/{long}")
        assert status == 400 and len(body["error"]) < 400, body


def test_tei_rerank_refuses_an_over_long_pair_unless_truncate(tiny, tiny_cross_encoder_dir):
    """As TEI: ``truncate`` defaults to false, and a pair over the model's window is a 413."""
    reranker = CrossEncoder(tiny_cross_encoder_dir)
    texts = ["cat dog", " ".join(["search"] * (reranker.max_length + 10))]
    with running(create_app(tiny, reranker=reranker)) as url:
        status, body, _ = call(f"{url}/rerank", {"query": "search", "texts": texts})
        assert status == 413 and "text #1" in body["error"] and "truncate=true" in body["error"]
        body = {"query": "search", "texts": texts, "truncate": True}
        assert call(f"{url}/rerank", body)[0] == 200


def test_a_cluster_that_cannot_be_reached_is_a_503_in_one_line(tiny):
    """Not a 500 'internal error': the line names the cluster (no password) and what to do."""
    from es_semantic.config import ESConfig
    from es_semantic.demo.server import free_loopback_port

    secret = "pw-7Hq2Lx9"
    config = ESConfig(url=f"http://user:{secret}@127.0.0.1:{free_loopback_port()}")
    with running(create_app(tiny, es_config=config)) as url:
        for path, body in [("/indices/docs/search", {"query": "search"}),
                           ("/indices/docs", None), ("/playground/settings", None)]:  # fmt: skip
            status, answer, headers = call(f"{url}{path}", body)
            assert status == 503 and "not reachable" in answer["error"], (path, answer)
            retry = {k.lower(): v for k, v in headers.items()}.get("retry-after")
            assert secret not in answer["error"] and retry == "1"


@pytest.mark.parametrize("tokens", [[1, 2, 3], [[1, 2], [3]]])
def test_openai_token_id_inputs_are_refused_naming_what_to_send(tiny, tokens):
    """OpenAI takes token ids (LangChain's OpenAIEmbeddings sends them by default); they are
    another tokenizer's, so the line says to send text, not pydantic's union dump."""
    with running(create_app(tiny)) as url:
        status, body, _ = call(f"{url}/v1/embeddings", {"input": tokens})
        assert status == 400 and "token ids" in body["error"], body
        assert "check_embedding_ctx_length=False" in body["error"]


def test_tei_embed_counts_texts_whose_characters_are_several_tokens(tiny_st_dir):
    """Byte-level BPE gives a CJK character up to three tokens: a text under the window in
    characters can be over it in tokens, and must be counted (a token holds at least one
    UTF-8 byte, not one character)."""
    from es_semantic import Encoder

    class ByteTokens(Encoder):  # what a byte-level BPE tokenizer counts on CJK text
        def count_tokens(self, texts):  # type: ignore[no-untyped-def]
            return [len(t.encode("utf-8")) + 2 for t in texts]

    model = ByteTokens(tiny_st_dir)
    text = "漢" * (model.config.max_length // 2)  # half the window in characters
    with running(create_app(model)) as url:
        status, body, _ = call(f"{url}/embed", {"inputs": text})
        assert status == 413 and "truncate=true" in body["error"], body
        assert call(f"{url}/embed", {"inputs": text, "truncate": True})[0] == 200


def test_tei_embed_counts_the_prefix_the_model_adds(tiny):
    """A text that fills the window alone overflows once the model's document prefix
    ("passage: ") is put before it: that is the text the model would truncate."""
    window = tiny.config.max_length
    text = " ".join(["search"] * (window - 2))
    assert tiny.count_tokens([text]) == [window]  # fits without the prefix
    assert tiny.count_tokens([tiny.config.document_prefix + text])[0] > window
    with running(create_app(tiny)) as url:
        status, body, _ = call(f"{url}/embed", {"inputs": text})
        assert status == 413 and "truncate=true" in body["error"], body


@pytest.mark.parametrize(
    ("path", "body"),
    [("/embed", '{"inputs": "a\\ud800b"}'), ("/v1/embeddings", '{"input": ["ok", "a\\ud800b"]}'),
     ("/rerank", '{"query": "q\\udfff", "texts": ["cat"]}'),
     ("/indices/docs/search", '{"query": "a\\ud800b"}'),
     ("/indices/docs/search", '{"query": "a", "filters": {"lang": "x\\ud800"}}')],
)  # fmt: skip
def test_a_lone_surrogate_is_a_400_not_a_500_in_the_shared_encode_pass(
    es_server, tiny, tiny_cross_encoder_dir, path, body
):
    """JSON may carry "\\ud800", which no UTF-8 tokenizer takes: it raised in the batched
    encode pass (a 500, for every request sharing that pass); it is refused at the door."""
    from tests.integration.test_service_exposed import raw

    app = create_app(tiny, es_config=es_server.config,
                     reranker=CrossEncoder(tiny_cross_encoder_dir))  # fmt: skip
    with running(app) as url:
        status, _, text = raw(f"{url}{path}", "POST", {"Content-Type": "application/json"},
                              body.encode())  # fmt: skip
        assert status == 400 and "Unicode" in text and "\\n" not in text, text


def test_tei_embed_prompt_names_are_the_models_and_others_are_refused(tiny):
    """``prompt_name`` picks the model's prompt ("query"; "document" and its other names);
    a name the model does not have was encoded as a document, silently: TEI refuses it."""
    with running(create_app(tiny)) as url:
        as_query = call(f"{url}/embed", {"inputs": "cat", "prompt_name": "query"})[1]
        for name in (None, "document", "passage"):
            status, vector, _ = call(f"{url}/embed", {"inputs": "cat", "prompt_name": name})
            assert status == 200 and vector != as_query, name
        assert np.allclose(as_query, tiny.encode_queries(["cat"]), atol=1e-5)
        status, body, _ = call(f"{url}/embed", {"inputs": "cat", "prompt_name": "qurey"})
        assert status == 422 and "qurey" in body["error"] and "query" in body["error"], body


def test_tei_embed_truncation_direction_left_is_refused_not_ignored(tiny):
    """The model keeps a text's first tokens: asked to keep the last (``Left``), the service
    cut the other end, silently."""
    window = tiny.config.max_length
    text = " ".join(["search"] * (window * 2))
    with running(create_app(tiny)) as url:
        right = {"inputs": text, "truncate": True, "truncation_direction": "Right"}
        assert call(f"{url}/embed", right)[0] == 200
        status, body, _ = call(f"{url}/embed", {**right, "truncation_direction": "Left"})
        assert status == 422 and "Left" in body["error"] and "Right" in body["error"], body
