"""examples/langchain_retriever.py and examples/mcp_client.py run as users run them (a
subprocess, the connection and model from the environment), against the test server."""

from __future__ import annotations

import pytest

from es_semantic import Indexer
from tests.examples.test_examples import DOCS, environment, run_example
from tests.needs import need_module

need_module("mcp", "the mcp extra is not installed")
need_module("langchain_core", "the langchain extra is not installed")


@pytest.fixture
def recipes(es, index_name, tiny) -> str:
    Indexer(es, index_name, tiny, metadata_fields={"lang": "keyword"}).index(DOCS)
    return index_name


def test_langchain_example(es_server, recipes, tiny_st_dir, tmp_path):
    env = environment(es_server, tiny_st_dir)
    done = run_example("langchain_retriever.py", [recipes, "spaghetti", "--lang", "fr",
                                                  "--mode", "keyword"], env, tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("[pates] {'keyword': 1}")
    assert "[pasta]" not in done.stdout  # the filter held


def test_mcp_client_example(es_server, recipes, tiny_st_dir, tmp_path):
    env = environment(es_server, tiny_st_dir)
    done = run_example("mcp_client.py", [recipes, "bake the dough", "--filter", "lang=en"],
                       env, tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "tools: search, get_document, list_indices, explain"
    assert '"values": ["en", "fr"]' in lines[1]
    hits = [line for line in lines if line.startswith("[")]
    assert hits and {line.split("]")[0][1:] for line in hits} <= {"pasta", "bread"}
