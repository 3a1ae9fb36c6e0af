import pytest

from es_semantic.config import EncoderConfig
from es_semantic.errors import ConfigError, IndexContractError
from es_semantic.schema.contract import IndexContract
from es_semantic.schema.mapping import analyzer_hint, index_body

ENC = EncoderConfig("m", "/m", "abc123", "mean", True, 256, "query: ", "passage: ", 384)


def contract(**kw):
    """One vector per document unless the test asks for passages."""
    return IndexContract.from_encoder(ENC, **{"chunking": "none", **kw})


def test_round_trip_through_meta():
    c = contract(metadata_fields={"lang": "keyword", "year": "long"}, text_fields=("title", "body"))
    assert IndexContract.from_meta(c.to_meta(), "i") == c


def test_index_body_from_contract():
    body = index_body(
        contract(metadata_fields={"year": "long"}, analyzer="english", index_options="int8_hnsw"),
        m=32,
    )
    props = body["mappings"]["properties"]
    assert props["embedding"] == {
        "type": "dense_vector",
        "index": True,
        "dims": 384,
        "similarity": "cosine",
        "index_options": {"type": "int8_hnsw", "m": 32},
    }
    assert props["title"] == {"type": "text", "analyzer": "english"}
    assert props["text"] == {"type": "text", "analyzer": "english"}
    assert props["year"] == {"type": "long"}
    assert props["content_hash"] == {"type": "keyword"}
    assert body["mappings"]["_source"] == {"excludes": ["embedding"]}
    assert body["mappings"]["dynamic"] is False
    assert body["mappings"]["_meta"]["es_semantic"]["model_fingerprint"] == "abc123"


def test_keep_vectors_and_flat():
    body = index_body(contract(keep_vectors_in_source=True, index_options="flat"))
    assert "_source" not in body["mappings"]
    assert body["mappings"]["properties"]["embedding"]["index_options"] == {"type": "flat"}
    with pytest.raises(ConfigError, match="m and ef_construction"):
        index_body(contract(index_options="flat"), m=16)


def test_unchosen_index_options_are_left_to_the_cluster():
    from es_semantic.cluster import ClusterInfo

    body = index_body(contract())
    assert "index_options" not in body["mappings"]["properties"]["embedding"]
    with pytest.raises(ConfigError, match="need an explicit --index-options"):
        index_body(contract(), m=16)
    old = ClusterInfo.from_responses({"version": {"number": "8.15.3"}}, None)
    with pytest.raises(ConfigError, match=r"bbq_hnsw needs Elasticsearch 8\.16\.0"):
        index_body(contract(index_options="bbq_hnsw"), cluster=old)
    # 9.2+ leaves vectors out of _source unless the index says otherwise: --keep-vectors does
    nine_two = ClusterInfo.from_responses({"version": {"number": "9.2.0"}}, None)
    kept = index_body(contract(keep_vectors_in_source=True), cluster=nine_two)
    assert kept["settings"]["index"]["mapping"] == {"exclude_source_vectors": False}
    assert (
        "mapping"
        not in index_body(contract(keep_vectors_in_source=True), cluster=old)["settings"]["index"]
    )  # an 8.x cluster refuses the unknown setting


def test_validation_names_bad_values():
    with pytest.raises(ConfigError, match="similarity='cos' is not one of cosine"):
        contract(similarity="cos")
    with pytest.raises(ConfigError, match="index_options='ivf'"):
        contract(index_options="ivf")
    with pytest.raises(ConfigError, match="metadata field 'x' has type 'str'"):
        contract(metadata_fields={"x": "str"})
    unnormalised = EncoderConfig("m", "/m", "f", "mean", False, 256, "", "", 8)
    with pytest.raises(ConfigError, match="similarity='dot_product' needs unit-length"):
        IndexContract.from_encoder(unnormalised, similarity="dot_product")


def test_check_refuses_mismatch_with_what_differs():
    c = contract()
    c.check(ENC, "docs")  # same encoder: fine
    other = EncoderConfig("big", "/big", "fff", "cls", True, 512, "", "", 768)
    with pytest.raises(IndexContractError) as err:
        c.check(other, "docs")
    text = str(err.value)
    assert "index 'docs' was built with m (384-d, mean)" in text
    assert "dims: index 384, encoder 768" in text
    assert "pooling: index 'mean', encoder 'cls'" in text
    # max_length only matters for indexing
    longer = EncoderConfig("m", "/m", "abc123", "mean", True, 512, "query: ", "passage: ", 384)
    c.check(longer, "docs")
    with pytest.raises(IndexContractError, match="max_length"):
        c.check(longer, "docs", for_indexing=True)


def test_missing_contract_is_explained():
    with pytest.raises(IndexContractError, match="no es-semantic contract"):
        IndexContract.from_meta({}, "legacy")


def test_analyzer_hint_names_plugin():
    assert "analysis-smartcn" in analyzer_hint("smartcn")
    assert "analysis-ik" in analyzer_hint("ik_max_word")


def test_chunked_contract_defaults_mapping_and_old_meta():
    from es_semantic.schema.contract import IndexContract as IC
    from es_semantic.schema.mapping import index_body as body_of

    cfg = EncoderConfig("m", "/m", "fp", "mean", True, 256, "", "", 3)
    chunked = IC.from_encoder(cfg)  # passages are the default layout: 128 tokens, overlap 32
    assert (chunked.chunking, chunked.chunk_tokens, chunked.chunk_overlap) == ("nested", 128, 32)
    short = IC.from_encoder(EncoderConfig("m", "/m", "fp", "mean", True, 64, "", "", 3))
    assert (short.chunk_tokens, short.chunk_overlap) == (64, 16)  # capped at the window
    assert chunked.vector_path == "passages.embedding"
    assert IC.from_meta(chunked.to_meta(), "i") == chunked
    mappings = body_of(chunked)["mappings"]
    passages = mappings["properties"]["passages"]
    assert passages["type"] == "nested"
    assert passages["properties"]["embedding"]["dims"] == 3
    assert "embedding" not in mappings["properties"]
    assert mappings["_source"]["excludes"] == ["passages.embedding"]
    # an index made before chunking existed reads as one vector per document
    old = IC.from_encoder(cfg, chunking="none").to_meta()
    for key in ("chunking", "chunk_tokens", "chunk_overlap"):
        old["es_semantic"].pop(key)
    assert IC.from_meta(old, "i").vector_path == "embedding"
    with pytest.raises(ConfigError, match="chunk_tokens=999"):
        IC.from_encoder(cfg, chunking="nested", chunk_tokens=999)
    with pytest.raises(ConfigError, match="chunk_overlap=100"):
        IC.from_encoder(cfg, chunking="nested", chunk_tokens=128, chunk_overlap=100)
