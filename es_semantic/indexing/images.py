"""Image files -> Documents for an image index (#32): files and folders (recursive), or a
column of a JSONL/CSV/Parquet file naming image files. Each image is read, its header
checked (format, size, Pillow's decompression-bomb limit) and kept as bytes; a file that
cannot be used is a ReadFailure naming it and why. Its pixels are decoded once, by the image
tower, where a truncated or corrupt body is a dead letter of its own. Streamed: one image in
hand at a time."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from es_semantic.encoding.images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    check_image,
    read_image_file,
)
from es_semantic.indexing.readers import FieldSpec, Record, ThreadableReader, to_document
from es_semantic.types import Document, ReadFailure


def image_files(paths: Sequence[str]) -> Iterator[str | ReadFailure]:
    """Every image file under ``paths``: a file is taken as given (whatever its extension: a
    file that is no image becomes a dead letter), a folder is walked recursively in name order
    for files with an image extension (hidden files and folders left out); a path that does
    not exist is a ReadFailure."""
    for path in paths:
        if os.path.isdir(path):
            yield from _walk(path)
        elif os.path.exists(path):
            yield path
        else:
            yield ReadFailure(path, f"{path}: no such file or folder", {"path": path})


def _walk(folder: str) -> Iterator[str | ReadFailure]:
    unlisted: list[OSError] = []  # os.walk skips a folder it cannot list: each is named
    for root, dirs, files in os.walk(folder, onerror=unlisted.append):
        while unlisted:
            yield _unlisted(unlisted.pop(0))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield os.path.join(root, name)
    while unlisted:
        yield _unlisted(unlisted.pop(0))


def _unlisted(exc: OSError) -> ReadFailure:
    where = str(exc.filename)
    reason = f"{where}: folder not listed ({exc.strerror or exc}); its images are not indexed"
    return ReadFailure(where, reason, {"path": where})


def read_images(paths: Sequence[str], spec: FieldSpec) -> ThreadableReader:
    """Documents of image files (``--format images``): id and image field the file's path."""
    return ThreadableReader(_read_images(paths, spec))


def _read_images(paths: Sequence[str], spec: FieldSpec) -> Iterator[Record]:
    field = spec.image_field or "path"
    for item in image_files(paths):
        if isinstance(item, ReadFailure):
            yield item
            continue
        yield image_document(item, item, item, {}, {field: item}, item)


def image_record(record: Mapping[str, Any], spec: FieldSpec, origin: str) -> Record:
    """A record whose ``spec.image_field`` names an image file (relative: to
    ``spec.image_base``), with its id, caption text fields and metadata beside it."""
    field = spec.image_field
    assert field is not None
    value = record.get(field)
    if not isinstance(value, str) or not value.strip():
        what = ("missing" if value is None else "empty" if isinstance(value, str)
                else f"{type(value).__name__}, not a path")  # fmt: skip
        return ReadFailure(origin, f"image field {field!r} is {what}", dict(record))
    plain = FieldSpec(spec.id_field, (field, *spec.text_fields), spec.metadata_fields)
    doc = to_document(record, plain, origin)  # id, captions and metadata checked as for text
    if isinstance(doc, ReadFailure):
        return doc
    texts = {k: v for k, v in doc.texts.items() if k != field}
    where = value if os.path.isabs(value) else os.path.join(spec.image_base or ".", value)
    return image_document(where, value, doc.id, texts, {**doc.metadata, field: value}, origin,
                          dict(record))  # fmt: skip


def image_document(
    file: str, shown: str, doc_id: str | None, texts: Mapping[str, str],
    metadata: Mapping[str, Any], origin: str, raw: Any = None,
) -> Record:  # fmt: skip
    """The Document of one image file (its bytes read, its header checked), or a ReadFailure
    naming the file (``shown``: its path as the input wrote it) and why."""
    try:
        data = read_image_file(file)
        check_image(data, shown)  # not decoded: the image tower does that, once
    except ImageReadError as exc:
        message = str(exc)
        if file != shown and message.startswith(file):
            message = shown + message[len(file) :]
        return ReadFailure(origin, message, raw if raw is not None else {"path": shown})
    return Document(doc_id, dict(texts), dict(metadata), origin, image=data)
