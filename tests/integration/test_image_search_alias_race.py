"""An image query's vector is made inside the searcher for the contract it read: if, while the
image is encoded, the alias moves to an index of another CLIP model and another search on the
same searcher reads that contract, the vector must not be sent to the new index (it was made
by the old model), whatever contract the searcher holds by then."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PIL")

from es_semantic import Searcher
from es_semantic.errors import IndexContractError
from tests.integration.alias_moves import old_and_new, swap
from tests.tiny_clip import image_bytes, tiny_clip, write_image

COLOURS = {"red": (220, 20, 20), "blue": (20, 20, 220), "green": (20, 200, 20)}


def test_an_image_encoded_for_the_old_index_is_not_sent_to_the_new_one(
    es: Any, index_name: str, tmp_path: Path
) -> None:
    from es_semantic.encoding.images import ImageEncoder

    first, other = (ImageEncoder(tiny_clip(tmp_path / f"clip{s}", seed=s)) for s in (0, 1))
    assert first.config.fingerprint != other.config.fingerprint
    docs = [{"id": name, "path": str(write_image(tmp_path / f"{name}.png", colour))}
            for name, colour in COLOURS.items()]  # fmt: skip
    old, new = old_and_new(es, index_name, (first, other), lambda tag: docs)
    searcher = Searcher(es, index_name, [first, other])  # an app that knows both models
    assert searcher.search_image(image_bytes(COLOURS["red"])).hits
    encode, raced = first.encode_images, []

    def racing(images: Any) -> Any:  # while the image is encoded with the old model ...
        if not raced:
            raced.append(True)
            swap(es, index_name, old, new)
            # ... another search notices the swap and reads the new contract
            assert searcher.search("red", mode="knn").hits
            assert searcher.encoder is other
        return encode(images)

    first.encode_images = racing  # type: ignore[method-assign]
    with pytest.raises(IndexContractError, match="query_vector"):
        searcher.search_image(image_bytes(COLOURS["red"]))
    assert searcher.search_image(image_bytes(COLOURS["red"])).hits  # encoded again: the new model
