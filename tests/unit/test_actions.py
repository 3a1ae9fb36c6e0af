import numpy as np

from es_semantic.config import EncoderConfig
from es_semantic.indexing.actions import (
    content_hash,
    document_id,
    parse_bulk_item,
    stored_ids,
    to_action,
)
from es_semantic.schema.contract import IndexContract
from es_semantic.types import Document

C = IndexContract.from_encoder(EncoderConfig("m", "/m", "fp", "mean", True, 256, "", "", 3))


def test_content_hash_tracks_text_metadata_and_model():
    doc = Document("1", {"text": "hello"}, {"lang": "en"})
    base = content_hash(doc, C)
    assert base == content_hash(Document("1", {"text": "hello"}, {"lang": "en"}, "other:origin"), C)
    assert base != content_hash(Document("1", {"text": "hello!"}, {"lang": "en"}), C)
    assert base != content_hash(Document("1", {"text": "hello"}, {"lang": "fr"}), C)
    other_model = IndexContract.from_encoder(
        EncoderConfig("m", "/m", "fp2", "mean", True, 256, "", "", 3)
    )
    assert base != content_hash(doc, other_model)


def test_id_falls_back_to_hash():
    assert document_id(Document(None, {"text": "x"}), "ab" * 32) == "ab" * 16
    assert document_id(Document("given", {"text": "x"}), "ab" * 32) == "given"


def test_action_shape():
    doc = Document("7", {"title": "T", "text": "x"}, {"lang": "en"})
    action = to_action("idx", "7", doc, "h", np.array([0.5, 0.25, 0.0], np.float32), C)
    assert action == {
        "_op_type": "index",
        "_index": "idx",
        "_id": "7",
        "_source": {
            "title": "T",
            "text": "x",
            "lang": "en",
            "content_hash": "h",
            "embedding": [0.5, 0.25, 0.0],
        },
    }


def test_bulk_item_reason():
    ok = parse_bulk_item(True, {"index": {"_id": "1", "status": 201}})
    assert ok.ok and ok.doc_id == "1"
    bad = parse_bulk_item(
        False,
        {
            "index": {
                "_id": "2",
                "status": 400,
                "error": {
                    "type": "document_parsing_exception",
                    "reason": "bad dims",
                    "caused_by": {"type": "illegal_argument_exception", "reason": "3 != 4"},
                },
            }
        },
    )
    assert not bad.ok
    assert (
        bad.reason
        == "HTTP 400 document_parsing_exception: bad dims (caused by illegal_argument_exception: 3 != 4)"
    )


def test_stored_ids_are_the_unchanged_and_the_found():
    docs = [
        {"_id": "a", "found": True, "_source": {"content_hash": "h1"}},
        {"_id": "b", "found": True, "_source": {"content_hash": "old"}},
        {"_id": "c", "found": False},
    ]
    assert stored_ids({"a": "h1", "b": "h2", "c": "h3"}, docs) == ({"a"}, {"a", "b"})


def test_base64_vectors_round_trip_big_endian() -> None:
    import base64

    from es_semantic.indexing.actions import pack_vector, unpack_vector

    vector = np.array([0.5, -1.25, 3.0e-7, 1.0], np.float32)
    packed = pack_vector(vector)
    # the documented form: base64 of big-endian IEEE-754 float32 (0.5 is 3f 00 00 00)
    assert base64.b64decode(packed)[:4] == bytes.fromhex("3f000000")
    np.testing.assert_array_equal(unpack_vector(packed), vector)
    try:  # elasticsearch-py 9.x ships its own packer: both must agree
        from elasticsearch.helpers import pack_dense_vector
    except ImportError:
        return
    assert pack_dense_vector(vector) == packed


def test_json_and_base64_actions_carry_the_same_vectors() -> None:
    from es_semantic.indexing.actions import unpack_vector

    doc = Document(id="7", texts={"text": "t"}, metadata={})
    vector = np.array([0.1, 0.2, 0.3], np.float32)
    as_json = to_action("idx", "7", doc, "h", vector, C, "json")["_source"]["embedding"]
    as_b64 = to_action("idx", "7", doc, "h", vector, C, "base64")["_source"]["embedding"]
    np.testing.assert_array_equal(np.array(as_json, np.float32), unpack_vector(as_b64))
