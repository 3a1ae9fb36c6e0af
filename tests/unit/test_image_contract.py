"""The index contract of an image index (#32): modality and image field recorded, checked at
every query and write, old contracts still readable."""

from __future__ import annotations

import pytest

from es_semantic.config import EncoderConfig
from es_semantic.errors import ConfigError, IndexContractError
from es_semantic.schema.contract import IndexContract
from es_semantic.schema.mapping import index_body

CLIP = EncoderConfig("clip", "/clip", "c1ip", "cls", True, 77, "", "", 8, modality="text+image")
TEXT = EncoderConfig("mini", "/mini", "m1n1", "mean", True, 256, "", "", 8)


def test_an_image_index_records_modality_and_image_field() -> None:
    c = IndexContract.from_encoder(CLIP)
    assert (c.modality, c.image_field, c.chunking, c.text_fields) == (
        "text+image", "path", "none", ("caption",))  # fmt: skip
    assert c.images
    assert IndexContract.from_meta(c.to_meta(), "imgs") == c
    props = index_body(c)["mappings"]["properties"]
    assert props["path"] == {"type": "keyword"}
    assert props["caption"]["type"] == "text"


def test_a_text_index_stays_text_and_old_contracts_read_as_text() -> None:
    c = IndexContract.from_encoder(TEXT, chunking="none")
    assert (c.modality, c.image_field, c.images) == ("text", None, False)
    meta = c.to_meta()
    for key in ("modality", "image_field"):  # a contract written before #32
        del meta["es_semantic"][key]
    assert IndexContract.from_meta(meta, "old") == c


def test_a_text_encoder_on_an_image_index_is_refused_in_one_line() -> None:
    c = IndexContract.from_encoder(CLIP)
    with pytest.raises(
        IndexContractError, match="modality: index 'text\\+image', encoder 'text'"
    ) as e:
        c.check(TEXT, "imgs")
    assert "\n" not in str(e.value)


def test_another_clip_on_an_image_index_is_refused() -> None:
    other = EncoderConfig("clip2", "/c2", "0ther", "cls", True, 77, "", "", 8,
                          modality="text+image")  # fmt: skip
    c = IndexContract.from_encoder(CLIP)
    c.check(CLIP, "imgs")  # the same model passes
    with pytest.raises(IndexContractError, match="model: index clip \\(c1ip\\), encoder clip2"):
        c.check(other, "imgs")
    with pytest.raises(IndexContractError, match="modality: index 'text', encoder 'text\\+image'"):
        IndexContract.from_encoder(TEXT, chunking="none").check(CLIP, "docs")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunking": "nested", "chunk_tokens": 32}, "no chunking"),
        ({"image_field": "caption", "text_fields": ("caption",)}, "overlap or are reserved"),
        ({"metadata_fields": {"path": "keyword"}}, "overlap or are reserved"),
    ],
)
def test_bad_image_contracts_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IndexContract.from_encoder(CLIP, **options)


def test_an_image_field_on_a_text_index_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs an image model"):
        IndexContract.from_encoder(TEXT, chunking="none", image_field="path")


def test_migrate_refuses_an_image_index_and_a_clip_model() -> None:
    from es_semantic.migration.plan import new_contract

    with pytest.raises(ConfigError, match="cannot be migrated"):
        new_contract(IndexContract.from_encoder(CLIP), CLIP)
    with pytest.raises(ConfigError, match="--format images"):
        new_contract(IndexContract.from_encoder(TEXT, chunking="none"), CLIP)
