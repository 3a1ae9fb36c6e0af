"""One JSONL line reader (indexing.readers.json_lines) behind every JSONL file the package reads:
documents, queries, training pairs, calibration samples, the duplicates checkpoint."""

from pathlib import Path

import pytest

from es_semantic.errors import InputError

LATIN1_LINE = b'{"_id": "q2", "text": "caf\xe9"}\n'


def test_queries_with_a_byte_that_is_not_utf8_name_the_file_and_line(tmp_path: Path) -> None:
    from es_semantic.evaluation.data import load_queries

    path = tmp_path / "q.jsonl"
    path.write_bytes(b'{"_id": "q1", "text": "fine"}\n' + LATIN1_LINE)
    with pytest.raises(InputError, match=r"q\.jsonl:2: invalid UTF-8 at byte 26: re-save"):
        load_queries(path)


def test_calibration_texts_with_a_byte_that_is_not_utf8_name_the_file_and_line(
    tmp_path: Path,
) -> None:
    from es_semantic.cli.common import read_sample_texts

    path = tmp_path / "s.txt"
    path.write_bytes(b"plain\n" + LATIN1_LINE)
    with pytest.raises(InputError, match=r"s\.txt:2: invalid UTF-8 at byte 26: re-save"):
        read_sample_texts(str(path))


def test_calibration_jsonl_with_a_byte_order_mark_reads_its_first_line_as_json(
    tmp_path: Path,
) -> None:
    from es_semantic.cli.common import read_sample_texts

    path = tmp_path / "s.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "first"}\n{"text": "second"}\n')
    assert read_sample_texts(str(path)) == ["first", "second"]


def test_json_lines_numbers_values_and_bad_lines() -> None:
    from es_semantic.indexing.readers import BadLine, json_lines

    lines = [b'\xef\xbb\xbf{"a": 1}\n', b"\n", b"{oops\n", b'{"t": "caf\xe9"}\n', b"[2]\n"]
    out = list(json_lines(lines))
    assert [number for number, _ in out] == [1, 3, 4, 5]
    assert out[0][1] == {"a": 1} and out[3][1] == [2]
    broken, undecoded = out[1][1], out[2][1]
    assert isinstance(broken, BadLine) and broken.column == 2 and broken.text == "{oops\n"
    assert broken.reason == f"invalid JSON at column 2: {broken.message}"
    assert isinstance(undecoded, BadLine) and undecoded.column is None
    assert undecoded.reason == "invalid UTF-8 at byte 10: re-save the file as UTF-8"
    assert undecoded.text == '{"t": "caf\ufffd"}\n'


def test_json_lines_passes_plain_text_lines_when_asked() -> None:
    from es_semantic.indexing.readers import json_lines

    lines = ["\ufeffq1\tfirst query\r\n", '  {"_id": "q2"}\n', "   \n", "plain {x}\n"]
    assert list(json_lines(lines, text_lines=True)) == [
        (1, "q1\tfirst query"), (2, {"_id": "q2"}), (4, "plain {x}")
    ]  # fmt: skip


def test_every_reader_keeps_its_own_wording_for_a_broken_json_line(tmp_path: Path) -> None:
    from es_semantic.cli.common import read_sample_texts
    from es_semantic.corpus.duplicates import _Checkpoint
    from es_semantic.evaluation.data import load_queries
    from es_semantic.training.data import read_pairs

    path = tmp_path / "x.jsonl"
    path.write_text('{"_id": "1", "text": "a", "query": "q", "positive": "p"}\n{oops\n')
    with pytest.raises(InputError, match=r"x\.jsonl:2: invalid JSON \(Expecting"):
        load_queries(path)
    with pytest.raises(InputError, match=r"x\.jsonl:2: not valid JSON \(Expecting"):
        read_pairs(path)
    with pytest.raises(InputError, match=r"x\.jsonl:2: not valid JSON \(Expecting"):
        read_sample_texts(str(path))
    from es_semantic.errors import ConfigError

    with pytest.raises(ConfigError, match=r"checkpoint .*x\.jsonl:2 is not JSON: delete"):
        _Checkpoint(path)
