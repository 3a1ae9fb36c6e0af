"""Image indexing (#32) on the local server: files, folders and a column of image paths
through the one indexing path; every bad input a dead letter naming the file; the
content-hash skip of the image bytes; the contract at every write."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytest.importorskip("PIL")

from es_semantic.cli import cli
from tests.tiny_clip import image_bytes, tiny_clip, write_image

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220),
           "yellow": (230, 230, 0), "black": (0, 0, 0)}  # fmt: skip


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture
def run(es_server: Any, clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str, model: str | Path | None = None) -> Any:
        extra = ["--es-url", es_server.config.url, "--model", str(model or clip_dir)]
        return CliRunner().invoke(cli, [*args, *extra], catch_exceptions=False)

    return invoke


def _good_images(folder: Path) -> list[str]:
    """Five images, one per format, some in a subfolder (the walk is recursive)."""
    names = ["red.png", "green.jpg", "sub/blue.webp", "sub/deeper/yellow.gif", "black.bmp"]
    for name, colour in zip(names, COLOURS.values(), strict=True):
        write_image(folder / name, colour)
    (folder / "notes.txt").write_text("not an image: left out of the folder walk")
    return [str(folder / n) for n in names]


def _bad_images(folder: Path) -> dict[str, str]:
    """One file of every bad kind, with the words its dead letter must hold."""
    from PIL import Image

    good = image_bytes("red", fmt="JPEG")
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])  # its header cut
    body = image_bytes("red", shape="disc")  # its header whole: the image tower refuses it
    (folder / "truncated-body.png").write_bytes(body[: len(body) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    (folder / "text.png").write_text("hello, I am text")
    bomb = io.BytesIO()
    Image.new("1", (10_000, 9_000)).save(bomb, "PNG")  # 90M pixels: over Pillow's limit
    (folder / "bomb.png").write_bytes(bomb.getvalue())
    return {"truncated.jpg": "truncated", "truncated-body.png": "truncated image",
            "empty.png": "empty file", "corrupt.png": "corrupt",
            "text.png": "unsupported format", "bomb.png": "decompression bomb"}  # fmt: skip


def _report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_a_folder_with_every_bad_kind(run: Any, es: Any, index_name: str, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    good = _good_images(folder)
    bad = _bad_images(folder)
    drawing = tmp_path / "drawing.svg"
    drawing.write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    bad["drawing.svg"] = "unsupported format"
    bad["missing.png"] = "no such file"
    dead, report = tmp_path / "dead.jsonl", tmp_path / "report.json"
    args = ("index", index_name, str(folder), str(drawing), str(tmp_path / "missing.png"),
            "--format", "images", "--batch-size", "3", "--dead-letter", str(dead),
            "--report-json", str(report), "--quiet")  # fmt: skip
    result = run(*args)
    assert result.exit_code == 1, result.output
    first = _report(report)
    assert (first["indexed"], first["skipped"], first["failed"]) == (len(good), 0, len(bad))
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert len(letters) == len(bad)
    for name, words in bad.items():
        (letter,) = [x for x in letters if x["source"].endswith(name)]
        assert name in letter["reason"] and words in letter["reason"], letter
    es.indices.refresh(index=index_name)
    stored = es.get(index=index_name, id=good[2])["_source"]
    assert stored["path"] == good[2]
    meta = es.indices.get_mapping(index=index_name)[index_name]["mappings"]["_meta"]
    assert meta["es_semantic"]["modality"] == "text+image"
    # a re-run skips every unchanged image without encoding it; a changed one is encoded
    write_image(Path(good[0]), (10, 10, 10), shape="disc")
    dead.unlink()
    assert run(*args).exit_code == 1
    again = _report(report)
    assert (again["indexed"], again["skipped"], again["failed"]) == (1, len(good) - 1, len(bad))
    assert again["encoded"] == 1


def test_a_column_of_image_paths_with_captions_and_metadata(
    run: Any, es: Any, index_name: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    rows = []
    for i, (name, colour) in enumerate(COLOURS.items()):
        write_image(data / "img" / f"{name}.png", colour)
        rows.append({"file": f"img/{name}.png", "caption": f"a {name} square", "lang": "en",
                     "id": str(i)})  # fmt: skip
    rows.append({"file": "img/nowhere.png", "caption": "gone", "lang": "en", "id": "90"})
    rows.append({"file": "", "caption": "no image", "lang": "en", "id": "91"})
    table = data / "images.csv"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "file", "caption", "lang"])
        writer.writeheader()
        writer.writerows(rows)
    dead, report = tmp_path / "dead.jsonl", tmp_path / "report.json"
    result = run("index", index_name, str(table), "--image-field", "file", "--text-field",
                 "caption", "--metadata-field", "lang", "--dead-letter", str(dead),
                 "--report-json", str(report), "--quiet")  # fmt: skip
    assert result.exit_code == 1, result.output
    counts = _report(report)
    assert (counts["indexed"], counts["failed"]) == (len(COLOURS), 2)
    reasons = sorted(json.loads(line)["reason"] for line in dead.read_text().splitlines())
    assert "img/nowhere.png: no such file" in reasons[1] and "is empty" in reasons[0]
    source = es.get(index=index_name, id="2")["_source"]
    assert (source["file"], source["caption"], source["lang"]) == (
        "img/blue.png",
        "a blue square",
        "en",
    )
    # JSONL into the same index: the contract's image field and captions
    lines = data / "more.jsonl"
    lines.write_text(json.dumps({"id": "7", "file": "img/red.png", "caption": "red again"}))
    assert run("index", index_name, str(lines), "--quiet").exit_code == 0


def test_the_contract_at_every_write(
    run: Any, es: Any, tiny_st_dir: Path, index_name: str, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    write_image(folder / "red.png", "red")
    text_model = run("index", index_name, str(folder), "--format", "images",
                     model=tiny_st_dir)  # fmt: skip
    assert text_model.exit_code != 0
    assert "need a CLIP model" in text_model.output
    assert run("index", index_name, str(folder), "--format", "images", "--quiet").exit_code == 0
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "1", "text": "plain text"}) + "\n")
    refused = run("index", index_name, str(docs), model=tiny_st_dir)
    assert refused.exit_code != 0
    assert "modality: index 'text+image', encoder 'text'" in refused.output
    ray = run("index", index_name, str(folder), "--format", "images", "--engine", "ray")
    assert ray.exit_code != 0 and "local engine only" in ray.output
    other = tiny_clip(tmp_path / "other", seed=7)  # the same shape, other weights
    write_image(folder / "blue.png", "blue")
    before = es.count(index=index_name)["count"]
    another = run("index", index_name, str(folder), "--format", "images", model=other)
    assert another.exit_code != 0 and "model: index hf (" in another.output
    es.indices.refresh(index=index_name)
    assert es.count(index=index_name)["count"] == before  # nothing written


def test_eval_refuses_to_index_a_text_corpus_with_a_clip_model(
    run: Any, es: Any, index_name: str, tmp_path: Path
) -> None:
    """eval --beir indexes text documents: with a CLIP model each would become a dead letter
    (no image field) and the evaluation would run on an empty index. One line instead."""
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "a red square"}) + "\n")
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "red"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    result = run("eval", "--beir", str(beir), "--index", index_name)
    assert result.exit_code != 0 and "--format images" in result.stderr, result.output
    assert not es.indices.exists(index=index_name)
