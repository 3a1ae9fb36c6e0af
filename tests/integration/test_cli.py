"""The es-semantic command line against the real ES-API server (CliRunner, exit codes)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from es_semantic.cli import cli
from tests.integration.fault_proxy import fault_proxy
from tests.integration.wire import Recorder, vector_requests


@pytest.fixture
def run(es_server, tiny_st_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default dead-letter files (INDEX.dead.jsonl) land here

    def invoke(*args, model=True, input=None, url=None):
        extra = ["--es-url", url or es_server.config.url] + (
            ["--model", str(tiny_st_dir)] if model else []
        )
        return CliRunner().invoke(cli, [*args, *extra], input=input, catch_exceptions=False)

    return invoke


def test_create_index_never_deletes_without_recreate(run, es, index_name):
    first = run("create-index", index_name, "--metadata-field", "lang", "--index-options", "flat")
    assert first.exit_code == 0, first.output
    assert "created" in first.output
    es.index(index=index_name, id="keep", document={"text": "x"}, refresh=True)
    again = run("create-index", index_name)
    assert again.exit_code == 0 and "already exists" in again.output
    assert es.count(index=index_name)["count"] == 1
    rebuilt = run("create-index", index_name, "--recreate")
    assert rebuilt.exit_code == 0 and "deleting" in rebuilt.output
    assert es.count(index=index_name)["count"] == 0


def test_index_search_info_round_trip(run, es, es_server, index_name, tmp_path):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(
        "\n".join(
            json.dumps({"id": str(i), "text": t, "lang": lang})
            for i, (t, lang) in enumerate(
                [
                    ("the cat and the dog", "en"),
                    ("search engine index", "en"),
                    ("python code test", "fr"),
                ]
            )
        )
        + "\n{bad json\n"
    )
    report = tmp_path / "report.json"
    dead = tmp_path / "dead.jsonl"
    result = run(
        "index",
        index_name,
        str(corpus),
        "--metadata-field",
        "lang",
        "--report-json",
        str(report),
        "--dead-letter",
        str(dead),
        "--quiet",
    )
    assert result.exit_code == 1  # one line failed
    data = json.loads(report.read_text())
    assert {k: data[k] for k in ("indexed", "skipped", "failed", "encoded")} == {
        "indexed": 3,
        "skipped": 0,
        "failed": 1,
        "encoded": 3,
    }
    assert json.loads(dead.read_text())["source"] == f"{corpus}:4"
    assert dead.stat().st_mode & 0o777 == 0o600  # it holds document text: owner only

    # a clean re-run leaves no failures of the previous run behind
    corpus.write_text(corpus.read_text().replace("{bad json\n", ""))
    clean = run("index", index_name, str(corpus), "--dead-letter", str(dead), "--quiet")
    assert clean.exit_code == 0, clean.output
    assert not dead.exists()

    with fault_proxy(es_server.config.url, wire := Recorder()) as proxy:
        found = run("search", index_name, "search engine", "--mode", "keyword", "--json",
                    url=proxy.url)  # fmt: skip
        filtered = run("search", index_name, "code", "--mode", "hybrid", "--filter", "lang=fr",
                       "--json", url=proxy.url)  # fmt: skip
        only_lang = run("search", index_name, "cat", "--mode", "knn", "--source", "lang",
                        "--json", url=proxy.url)  # fmt: skip
        table = run("search", index_name, "cat", "--mode", "knn", url=proxy.url)
    assert found.exit_code == 0, found.output
    payload = json.loads(found.stdout)
    assert payload["mode"] == "keyword" and payload["hits"][0]["id"] == "1"
    assert set(payload["hits"][0]) >= {"id", "score", "source", "scores"}
    assert [h["id"] for h in json.loads(filtered.stdout)["hits"]] == ["2"]
    lang_hits = json.loads(only_lang.stdout)["hits"]
    assert len(lang_hits) == 3 and all(set(h["source"]) == {"lang"} for h in lang_hits)
    assert table.exit_code == 0 and "  id" in table.output and "[knn]" in table.output
    # no vectors in hits: the index keeps none in _source, and no search asks for them
    mapping = es.indices.get_mapping(index=index_name)[index_name]["mappings"]
    assert mapping["_source"]["excludes"] == ["passages.embedding"]
    searches = wire.search_bodies()
    assert len(searches) >= 4, wire.requests  # one per leg: keyword, 2 for hybrid, knn, knn
    assert [vector_requests(body, hidden="passages") for body in searches] == [[]] * len(searches)

    info = run("info", index_name, "--json")
    assert json.loads(info.stdout)["count"] == 3
    contract = json.loads(info.stdout)["contract"]
    assert contract["dims"] == 32
    # every --json names the backend and precision that ran: the ones the contract recorded
    ran = {k: contract[k] for k in ("backend", "quantize", "precision")}
    assert data["encoder"] == {"model": contract["model_name"], **ran}
    assert payload["encoder"] == data["encoder"]
    assert json.loads(only_lang.stdout)["encoder"]["precision"] == contract["precision"]


def test_stdin_and_exit_codes(run, index_name):
    ok = run("index", index_name, "-", "--quiet", input='{"id": "a", "text": "the cat"}\n')
    assert ok.exit_code == 0, ok.output
    bad_filter = run("search", index_name, "cat", "--filter", "nonsense")
    assert bad_filter.exit_code == 2 and "not FIELD=VALUE" in bad_filter.output
    missing = run("search", "no-such-index-xyz", "cat")
    assert missing.exit_code == 1 and "does not exist" in missing.output
    empty = run("search", index_name, "   ")
    assert empty.exit_code == 2 and "query is empty" in empty.output


def test_unreachable_server_is_one_line_exit_1(tiny_st_dir):
    result = CliRunner().invoke(
        cli, ["info", "x", "--es-url", "http://127.0.0.1:1", "--model", str(tiny_st_dir)]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: Elasticsearch at http://127.0.0.1:1 is not reachable: cannot connect (connection refused). Check --es-url / ES_URL."
    ]


@pytest.mark.slow
def test_quickstart_end_to_end(es_server, index_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the quickstart's dead-letter file would go
    args = ["quickstart", "--limit", "120", "--index", index_name, "--es-url", es_server.config.url]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for mode in ("keyword (", "knn (", "hybrid/"):
        assert mode in result.output
    assert "120 indexed" in result.output
    assert "120/120 [" in result.output  # the progress bar knew the total (and so time left)
    assert result.output.count("1. ") >= 15  # a first hit for every mode of every demo query


def test_debug_output_never_shows_secrets(tiny_st_dir):
    args = [
        "info",
        "x",
        "--debug",
        "--es-url",
        "http://127.0.0.1:1",
        "--api-key",
        "S3CRET-API-KEY",
        "--model",
        str(tiny_st_dir),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "Traceback" in result.output  # --debug shows the traceback...
    assert "S3CRET-API-KEY" not in result.output  # ...but never the key
    with_password = CliRunner().invoke(
        cli,
        [
            "--username",
            "elastic",
            "--password",
            "hunter2-pw",
            "--debug",
            "info",
            "x",
            "--es-url",
            "http://127.0.0.1:1",
            "--model",
            str(tiny_st_dir),
        ],
    )
    assert with_password.exit_code == 1 and "hunter2-pw" not in with_password.output


def test_plugin_analyzer_missing_on_the_cluster_is_explained(run, es, index_name):
    result = run("create-index", index_name, "--analyzer", "smartcn")
    assert result.exit_code == 2
    assert "analysis-smartcn plugin" in result.output and "'cjk'" in result.output
    assert not es.indices.exists(index=index_name)
    cjk = run("create-index", index_name, "--analyzer", "cjk")
    assert cjk.exit_code == 0, cjk.output


@pytest.mark.parametrize(
    ("make_url", "expected"),
    [
        (
            lambda server: "http://no-such-host.invalid:9200",
            "http://no-such-host.invalid:9200 is not reachable",
        ),
        (lambda server: server.config.url.replace("http://", "https://"), "TLS failed"),
    ],
)
def test_dns_and_tls_failures_are_one_line_exit_1(es_server, tiny_st_dir, make_url, expected):
    url = make_url(es_server)
    result = CliRunner().invoke(cli, ["info", "x", "--es-url", url, "--model", str(tiny_st_dir)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.output


def test_config_file_supplies_connection_and_model(
    es_server, tiny_st_dir, index_name, tmp_path, monkeypatch
):
    config = tmp_path / "es-semantic.toml"
    config.write_text(f'model = "{tiny_st_dir}"\n[elasticsearch]\nurl = "{es_server.config.url}"\n')
    created = CliRunner().invoke(cli, ["create-index", index_name, "--config", str(config)])
    assert created.exit_code == 0, created.output
    monkeypatch.setenv("ES_SEMANTIC_CONFIG", str(config))
    info = CliRunner().invoke(cli, ["info", index_name, "--json"])
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout)["contract"]["dims"] == 32
    config.write_text("[elasticsearch]\nurll = 'typo'\n")
    bad = CliRunner().invoke(cli, ["info", index_name])
    assert bad.exit_code == 2 and "unknown key(s) urll" in bad.output


@pytest.mark.parametrize(
    ("flags", "header"),
    [
        (["--api-key", "a2V5OnNlY3JldA=="], "ApiKey a2V5OnNlY3JldA=="),
        (["--username", "elastic", "--password", "pw-123"], "Basic ZWxhc3RpYzpwdy0xMjM="),
        (["--bearer-token", "tok-456"], "Bearer tok-456"),
    ],
)
def test_each_auth_method_reaches_a_checking_server(
    es_server, tiny_st_dir, index_name, flags, header
):
    from tests.integration.fault_proxy import fault_proxy, require_authorization

    with fault_proxy(es_server.config.url, require_authorization(header)) as proxy:
        ok = CliRunner().invoke(
            cli,
            [
                "create-index",
                index_name,
                "--es-url",
                proxy.url,
                "--model",
                str(tiny_st_dir),
                *flags,
            ],
        )
        assert ok.exit_code == 0, ok.output
        refused = CliRunner().invoke(
            cli, ["info", index_name, "--es-url", proxy.url, "--model", str(tiny_st_dir)]
        )
        assert refused.exit_code == 1 and "authentication failed" in refused.output
    assert proxy.injected == 1  # only the call without credentials was refused


def test_index_without_contract_and_huge_query(run, es, index_name):
    es.indices.create(index=index_name, mappings={"properties": {"text": {"type": "text"}}})
    plain = run("search", index_name, "cat")
    assert plain.exit_code == 1 and "no es-semantic contract" in plain.output
    huge = run("search", index_name, "x" * 100_000)
    assert huge.exit_code == 2 and "limit is 10000" in huge.output


def test_tls_with_ca_file_or_fingerprint(es_server, tiny_st_dir, index_name, tmp_path):
    import hashlib
    import shutil
    import ssl
    import subprocess

    from tests.integration.fault_proxy import fault_proxy, forward_all

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    fingerprint = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.read_text())).hexdigest()
    base = ["--model", str(tiny_st_dir)]
    with fault_proxy(es_server.config.url, forward_all, tls=(str(cert), str(key))) as proxy:
        assert proxy.url.startswith("https://")
        with_ca = CliRunner().invoke(
            cli, ["create-index", index_name, "--es-url", proxy.url, "--ca-certs", str(cert), *base]
        )
        assert with_ca.exit_code == 0, with_ca.output
        pinned = CliRunner().invoke(
            cli,
            ["info", index_name, "--es-url", proxy.url, "--ssl-fingerprint", fingerprint, *base],
        )
        assert pinned.exit_code == 0, pinned.output
        untrusted = CliRunner().invoke(cli, ["info", index_name, "--es-url", proxy.url, *base])
        assert untrusted.exit_code == 1 and "TLS failed" in untrusted.output
        wrong_pin = CliRunner().invoke(
            cli, ["info", index_name, "--es-url", proxy.url, "--ssl-fingerprint", "00" * 32, *base]
        )
        assert wrong_pin.exit_code == 1 and "TLS failed" in wrong_pin.output


def test_delete_by_ids_and_by_filter_with_dry_run(run, es, index_name):
    docs = "\n".join(
        json.dumps({"id": str(i), "text": f"the cat {i}", "lang": "fr" if i % 3 == 0 else "en"})
        for i in range(9)
    )
    assert (
        run(
            "index", index_name, "-", "--metadata-field", "lang", "--quiet", input=docs + "\n"
        ).exit_code
        == 0
    )
    dry = run("delete", index_name, "--query", "lang=fr", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["matched"] == 3 and es.count(index=index_name)["count"] == 9
    gone = run("delete", index_name, "--query", "lang=fr", "--json")
    assert json.loads(gone.stdout)["deleted"] == 3 and es.count(index=index_name)["count"] == 6
    by_id = run("delete", index_name, "--ids", "1,2", "--ids", "404")
    assert (
        by_id.exit_code == 0
        and "deleted 2 of 2" in by_id.output
        and "not found: 404" in by_id.output
    )
    assert es.count(index=index_name)["count"] == 4
    neither = run("delete", index_name)
    assert neither.exit_code == 2 and "either ids or a filter" in neither.output
    unknown = run("delete", index_name, "--query", "author=me")
    assert unknown.exit_code == 2 and "cannot filter on 'author'" in unknown.output


def test_delete_missing_with_dry_run(run, es, index_name):
    def docs(ids):
        return "\n".join(json.dumps({"id": i, "text": f"the cat {i}"}) for i in ids) + "\n"

    assert run("index", index_name, "-", "--quiet", input=docs(["a", "b", "c", "d"])).exit_code == 0
    dry = run(
        "index", index_name, "-", "--quiet", "--delete-missing", "--dry-run", input=docs(["a", "b"])
    )
    assert dry.exit_code == 0, dry.output
    assert "would delete 2 documents" in dry.output and "  c" in dry.output
    assert es.count(index=index_name)["count"] == 4
    with_failure = run(
        "index", index_name, "-", "--quiet", "--delete-missing", input=docs(["a"]) + "{broken\n"
    )
    assert with_failure.exit_code == 1 and "--delete-missing skipped" in with_failure.output
    assert es.count(index=index_name)["count"] == 4
    real = run("index", index_name, "-", "--quiet", "--delete-missing", input=docs(["a", "b"]))
    assert real.exit_code == 0 and "deleted 2 documents" in real.output
    assert sorted(h["_id"] for h in es.search(index=index_name, size=10)["hits"]["hits"]) == [
        "a",
        "b",
    ]
    alone = run("index", index_name, "-", "--dry-run", input=docs(["a"]))
    assert alone.exit_code == 2 and "--dry-run goes with --delete-missing" in alone.output


def test_chunked_index_from_the_cli_shows_the_best_passage(run, es, es_server, index_name):
    long_text = "\n\n".join(
        " ".join(f"Paragraph {p} sentence {i} is about harbours and boats." for i in range(6))
        for p in range(12)
    )
    doc = {"id": "long", "title": "Harbours", "text": long_text + "\n\nZebras graze in Kenya."}
    created = run("create-index", index_name, "--chunk", "--chunk-tokens", "48")
    assert created.exit_code == 0 and "passages of 48 tokens (overlap 12)" in created.output
    report = run("index", index_name, "-", input=json.dumps(doc) + "\n")
    assert report.exit_code == 0, report.output
    assert "1 chunked into" in report.output
    info = json.loads(run("info", index_name, "--json").stdout)
    assert info["contract"]["chunking"] == "nested" and info["contract"]["chunk_tokens"] == 48
    assert info["count"] == 1 and info["vectors"] > 3
    assert "passage vectors" in run("info", index_name).output
    with fault_proxy(es_server.config.url, wire := Recorder()) as proxy:
        found = json.loads(
            run(
                "search", index_name, "zebras kenya", "--mode", "knn", "--json", url=proxy.url
            ).output
        )
    (hit,) = found["hits"]
    assert hit["id"] == "long" and hit["passage"]
    # the passage comes as an inner hit's text: the search asks for no passages and no vectors
    (search,) = wire.search_bodies()
    assert vector_requests(search, hidden="passages") == []
    table = run("search", index_name, "zebras kenya", "--mode", "knn")
    assert table.exit_code == 0 and "Harbours | " in table.output


def test_chunk_on_an_unchunked_index_is_refused_and_cut_documents_are_reported(run, index_name):
    long_doc = {"id": "l", "text": " ".join(f"word{i}" for i in range(600))}
    first = run("index", index_name, "-", "--no-chunk", input=json.dumps(long_doc) + "\n")
    assert "1/" not in first.output  # stdin: no total to show
    assert first.exit_code == 0, first.output
    assert "1 truncated" in first.output and "index them as passages with --chunk" in first.output
    again = run("index", index_name, "-", "--chunk", input=json.dumps(long_doc) + "\n")
    assert again.exit_code == 2 and "es-semantic migrate" in again.output


def test_info_says_which_index_options_the_cluster_chose(run, index_name):
    created = run("create-index", index_name)
    assert created.exit_code == 0 and "cluster-default index options" in created.output
    info = json.loads(run("info", index_name, "--json").stdout)
    assert info["contract"]["index_options"] is None  # not chosen: the cluster decides
    assert info["index_options"]["type"] in ("int8_hnsw", "bbq_hnsw", "hnsw")
    assert info["index_options"]["from"].startswith("cluster default")
    table = run("info", index_name)
    assert f"{info['index_options']['type']} (cluster default" in table.output


def test_index_options_newer_than_the_cluster_are_refused_in_one_line(run, es, index_name):
    from es_semantic.elastic.client import probe_cluster

    cluster = probe_cluster(es)
    if cluster.at_least((9, 2, 0)):
        pytest.skip(f"{cluster.number} supports every index type es-semantic knows")
    result = run("create-index", index_name, "--index-options", "bbq_disk")
    assert result.exit_code == 2, result.output
    assert "bbq_disk needs Elasticsearch 9.2.0 or later" in result.output
    assert not es.indices.exists(index=index_name)


def test_passages_are_the_default_layout_and_no_chunk_opts_out(run, index_name, tiny_st_dir):
    from es_semantic import Encoder

    window = Encoder(tiny_st_dir).config.max_length
    created = run("create-index", index_name)
    assert created.exit_code == 0, created.output
    contract = json.loads(run("info", index_name, "--json").stdout)["contract"]
    assert contract["chunking"] == "nested"
    assert contract["chunk_tokens"] == min(128, window) and contract["chunk_overlap"] > 0
    flat = run("create-index", f"{index_name}-flat", "--no-chunk")
    assert flat.exit_code == 0, flat.output
    flat_contract = json.loads(run("info", f"{index_name}-flat", "--json").stdout)["contract"]
    assert flat_contract["chunking"] == "none"
    clash = run("create-index", f"{index_name}-x", "--no-chunk", "--chunk-tokens", "64")
    assert clash.exit_code == 2 and "--no-chunk" in clash.output


def test_index_progress_shows_the_total_of_a_file(run, index_name, tmp_path):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("\n".join(json.dumps({"id": str(i), "text": f"note {i}"}) for i in range(7)))
    result = run("index", index_name, str(corpus))
    assert result.exit_code == 0, result.output
    assert "7/7 [" in result.output and "<00:00" in result.output  # count, total, time left


def test_index_dedupe_options_flag_and_count(run, index_name, tmp_path):
    corpus = tmp_path / "docs.jsonl"
    rows = [{"id": "a", "text": "search engine vector index"},
            {"id": "b", "text": "banana cherry river mountain music"},
            {"id": "a2", "text": "search engine vector index"}]  # fmt: skip
    corpus.write_text("\n".join(json.dumps(r) for r in rows))
    report = tmp_path / "report.json"
    result = run("index", index_name, str(corpus), "--dedupe-threshold", "0.99999",
                 "--report-json", str(report))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "near-duplicates: 1 indexed with duplicate_of" in result.output
    data = json.loads(report.read_text())
    assert (data["flagged"], data["indexed"]) == (1, 3)
    assert data["near_duplicates"] == [
        {"id": "a2", "duplicate_of": "a", "score": 1.0, "action": "flagged"}
    ]
    found = json.loads(run("search", index_name, "engine", "--mode", "keyword", "--filter",
                           "duplicate_of=a", "--json").output)  # fmt: skip
    assert [h["id"] for h in found["hits"]] == ["a2"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_index_with_an_exported_int8_model_then_search_with_torch(
    es_server, es, index_name, tmp_path, monkeypatch, backend
):
    """The packaged MiniLM exported and quantised on the user's own sample: the build prints
    its accuracy, the contract records it, and torch-encoded queries find the documents."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    monkeypatch.setenv("ES_SEMANTIC_CACHE_DIR", str(tmp_path / "cache"))
    topics = ["heart disease and blood pressure", "protein folding in cells",
              "river floods and rainfall", "neural networks for images",
              "coffee and sleep quality", "volcano eruptions and ash clouds"]  # fmt: skip
    docs = [{"id": f"d{i}", "title": t, "text": f"A study of {t}, number {i}."}
            for i, t in enumerate(topics * 8)]  # fmt: skip
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    url = ["--es-url", es_server.config.url]
    refused = CliRunner().invoke(cli, ["index", index_name, str(corpus), "--backend", backend,
                                       "--quantize", "int8-dynamic", "--quiet", *url])  # fmt: skip
    assert refused.exit_code == 2 and "--calibration FILE" in refused.output
    built = CliRunner().invoke(cli, ["index", index_name, str(corpus), "--backend", backend,
                                     "--quantize", "int8-dynamic", "--calibration", str(corpus),
                                     "--force-quantized", *url])  # fmt: skip
    assert built.exit_code == 0, built.output
    assert f"{backend} int8-dynamic: mean cosine 0.9" in built.output
    info = CliRunner().invoke(cli, ["info", index_name, *url])
    assert f"encoded with {backend} int8-dynamic" in info.output
    found = CliRunner().invoke(cli, ["search", index_name, "volcano ash", "--mode", "knn",
                                     "-k", "3", "--json", *url])  # fmt: skip
    hits = json.loads(found.stdout)["hits"]
    assert len(hits) == 3
    assert all("volcano" in h["source"]["title"] for h in hits)
