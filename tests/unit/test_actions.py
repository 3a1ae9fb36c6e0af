import numpy as np

from es_semantic.config import EncoderConfig
from es_semantic.indexing.actions import (
    content_hash,
    document_id,
    parse_bulk_item,
    to_action,
    unchanged_ids,
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


def test_unchanged_ids():
    docs = [
        {"_id": "a", "found": True, "_source": {"content_hash": "h1"}},
        {"_id": "b", "found": True, "_source": {"content_hash": "old"}},
        {"_id": "c", "found": False},
    ]
    assert unchanged_ids({"a": "h1", "b": "h2", "c": "h3"}, docs) == {"a"}
