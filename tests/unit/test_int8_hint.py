"""The int8 hint of `index` and `serve` (#35): said once where this machine's cache holds an int8
build of the same model whose recorded accuracy, measured on this CPU kind, meets the goal
(mean cosine >= 0.995, min >= 0.99); nothing otherwise, and nothing built or measured."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from es_semantic.cli.common import Settings, say_int8_hint
from es_semantic.config import EncoderConfig
from es_semantic.encoding.backend import BackendChoice, CpuInfo
from es_semantic.encoding.device import cpu_info
from es_semantic.encoding.encoder import describe_encoder
from es_semantic.encoding.export import MODEL_FILES, export_slot
from es_semantic.encoding.heads import sentence_head
from es_semantic.encoding.int8_hint import build_record, int8_hint

HOST = CpuInfo("AMD EPYC test", frozenset({"avx512f", "avx512_vnni", "avx512_bf16"}))
OTHER = CpuInfo("Intel Xeon test", frozenset({"avx2"}))
OPENVINO_STATIC = BackendChoice("openvino", "int8-static")
PASSING = {"mean_cosine": 0.99703, "min_cosine": 0.99432, "texts": 60}


def record(
    cache: Path,
    config: EncoderConfig,
    accuracy: dict[str, float] | None,
    *,
    choice: BackendChoice = OPENVINO_STATIC,
    cpu: CpuInfo | None = HOST,
) -> Path:
    """A built export in ``cache`` as the build leaves it: the model file and quality.json."""
    head = sentence_head(config.pooling, config.normalize).key
    slot = export_slot(cache, config.fingerprint, head, choice)
    slot.folder.mkdir(parents=True)
    slot.model_file.write_text("<net/>")
    quality: dict[str, object] = {"model": config.model_name, "variant": choice.variant}
    if cpu is not None:
        quality |= {"cpu": cpu.model, "cpu_kind": cpu.kind}
    if accuracy is not None:
        quality["accuracy"] = accuracy
    (slot.folder / "quality.json").write_text(json.dumps(quality))
    return slot.folder


@pytest.fixture()
def config(tiny_bert_dir: Path) -> EncoderConfig:
    return describe_encoder(tiny_bert_dir, backend="torch", precision="float32")


def test_hint_names_the_build_its_figures_and_the_options(
    config: EncoderConfig, tmp_path: Path
) -> None:
    record(tmp_path, config, PASSING)
    hint = int8_hint(config, HOST, cache_dir=tmp_path)
    assert hint is not None and "\n" not in hint
    assert f"an int8 build of {config.model_name} holds accuracy on this CPU" in hint
    assert "mean cosine 0.9970, min 0.9943 against float32 on 60 held-out texts" in hint
    assert "`--backend openvino --quantize int8-static`" in hint


def test_the_fastest_passing_build_is_named(config: EncoderConfig, tmp_path: Path) -> None:
    record(tmp_path, config, PASSING, choice=BackendChoice("onnx", "int8-static"))
    record(tmp_path, config, {**PASSING, "mean_cosine": 0.9931})  # openvino: fails the goal
    hint = int8_hint(config, HOST, cache_dir=tmp_path)
    assert hint is not None and "`--backend onnx --quantize int8-static`" in hint


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_no_hint_for_an_uncalibrated_build(
    config: EncoderConfig, tmp_path: Path, backend: str
) -> None:
    """ONNX int8-dynamic met the cosine bar on SciFact (0.99501) and lost 0.0096 of nDCG@10."""
    record(tmp_path, config, PASSING, choice=BackendChoice(backend, "int8-dynamic"))  # type: ignore[arg-type]
    assert int8_hint(config, HOST, cache_dir=tmp_path) is None


@pytest.mark.parametrize(
    "accuracy",
    [
        {**PASSING, "mean_cosine": 0.9949},  # mean below 0.995
        {**PASSING, "min_cosine": 0.9899},  # min below 0.99
        None,  # built, never measured
    ],
)
def test_no_hint_where_the_record_misses_the_goal(
    config: EncoderConfig, tmp_path: Path, accuracy: dict[str, float] | None
) -> None:
    record(tmp_path, config, accuracy)
    assert int8_hint(config, HOST, cache_dir=tmp_path) is None


def test_no_hint_without_a_record_of_this_cpu_or_model(
    config: EncoderConfig, tmp_path: Path
) -> None:
    assert int8_hint(config, HOST, cache_dir=tmp_path) is None  # an empty cache
    record(tmp_path, config, PASSING, cpu=OTHER)
    assert int8_hint(config, HOST, cache_dir=tmp_path) is None  # measured on another CPU
    assert int8_hint(config, OTHER, cache_dir=tmp_path) is not None
    other_model = replace(config, fingerprint="0123456789abcdef")
    assert int8_hint(other_model, OTHER, cache_dir=tmp_path) is None
    other_head = replace(config, normalize=not config.normalize)
    assert int8_hint(other_head, OTHER, cache_dir=tmp_path) is None


def test_no_hint_for_a_record_without_a_cpu_kind_or_unreadable(
    config: EncoderConfig, tmp_path: Path
) -> None:
    """Builds made before the CPU kind was recorded say nothing (not "on this CPU")."""
    folder = record(tmp_path, config, PASSING, cpu=None)
    assert build_record(folder) is not None
    assert int8_hint(config, HOST, cache_dir=tmp_path) is None
    (folder / "quality.json").write_text("{not json")
    assert build_record(folder) is None


def test_no_hint_when_already_int8_on_a_gpu_or_for_images(
    config: EncoderConfig, tmp_path: Path
) -> None:
    record(tmp_path, config, PASSING)
    assert int8_hint(config, HOST, cache_dir=tmp_path) is not None
    for quantize in ("int8", "int8-dynamic", "int8-static"):
        assert int8_hint(replace(config, quantize=quantize), HOST, cache_dir=tmp_path) is None
    assert int8_hint(config, HOST, on_cpu=False, cache_dir=tmp_path) is None
    clip = replace(config, modality="text+image")
    assert int8_hint(clip, HOST, cache_dir=tmp_path) is None


def test_a_real_build_records_its_cpu_and_is_hinted(
    tiny_bert_dir: Path, tmp_path: Path, config: EncoderConfig
) -> None:
    """The build path records the CPU kind beside the accuracy, so its own record is hinted
    where its accuracy holds the goal."""
    pytest.importorskip("onnxruntime")
    from es_semantic.encoding.encoder import Encoder
    from tests.unit.test_backends import sample

    enc = Encoder(tiny_bert_dir, backend="onnx", quantize="int8-static", cache_dir=tmp_path,
                  calibration_texts=sample(40), report=lambda _: None, force_quantized=True)  # fmt: skip
    (folder,) = tmp_path.glob("exports/*/onnx-int8-static")
    assert (folder / MODEL_FILES["onnx"]).is_file()
    built = build_record(folder)
    assert built is not None and built[1] == cpu_info().kind
    assert enc.accuracy is not None and built[0] == enc.accuracy
    hint = int8_hint(config, cpu_info(), cache_dir=tmp_path)
    holds = enc.accuracy.mean_cosine >= 0.995 and enc.accuracy.min_cosine >= 0.99
    assert (hint is not None) == holds
    assert hint is None or "`--backend onnx --quantize int8-static`" in hint


def test_the_cli_says_it_once_on_stderr(
    tiny_bert_dir: Path,
    tmp_path: Path,
    config: EncoderConfig,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ES_SEMANTIC_CACHE_DIR", str(tmp_path))
    record(tmp_path, config, PASSING, cpu=cpu_info())
    options = {"model": str(tiny_bert_dir), "backend": "torch", "device": "cpu"}
    say_int8_hint(Settings(values=dict(options)))
    out, err = capsys.readouterr()
    assert out == "" and err.count("hint: an int8 build") == 1
    say_int8_hint(Settings(values={**options, "quantize": "int8-static"}))  # already int8
    assert capsys.readouterr() == ("", "")
