"""Precision is named and ``auto`` picks backend and precision (issue #35, items 0 and 1): the pure
choice on faked machine facts, the bf16 gate and its cache, the encoder naming what ran."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from es_semantic.encoding import device as device_module
from es_semantic.encoding.backend import (
    BF16_GATE,
    Accuracy,
    CpuInfo,
    Machine,
    parse_cpuinfo,
    plan_run,
    precision_option,
)
from es_semantic.encoding.encoder import Encoder, describe_encoder
from es_semantic.encoding.precision_gate import GATE_DIR, gate_texts, judge
from es_semantic.errors import ConfigError
from es_semantic.schema.contract import IndexContract

X86_BF16 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9454 48-Core Processor
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16
"""
X86_AVX2 = """processor\t: 0
model name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz
flags\t\t: fpu sse2 avx avx2 fma
"""
ARM_BF16 = """processor\t: 0
Features\t: fp asimd evtstrm aes sha2 crc32 atomics bf16 i8mm
CPU implementer\t: 0x41
"""
ALL = frozenset({"torch", "onnx", "openvino"})
BF16_CPU = parse_cpuinfo(X86_BF16)
AVX2_CPU = parse_cpuinfo(X86_AVX2)
TEXTS = ["the cat", "search engine vector index cluster node", "a red apple in the city"]


def cpu(cpu_info: CpuInfo, installed: frozenset[str] = ALL, accelerator: str = "cpu") -> Machine:
    return Machine(accelerator, cpu_info, installed)


def test_cpuinfo_is_read_for_model_and_flags() -> None:
    assert BF16_CPU.model == "AMD EPYC 9454 48-Core Processor"
    assert BF16_CPU.native_bf16 and not AVX2_CPU.native_bf16
    assert parse_cpuinfo(ARM_BF16).native_bf16  # Arm's BF16 feature
    assert CpuInfo().native_bf16 is False  # nothing readable: no bf16
    assert BF16_CPU.kind != AVX2_CPU.kind and BF16_CPU.kind == parse_cpuinfo(X86_BF16).kind


def test_auto_on_a_bf16_cpu_is_gated_bf16_on_the_fastest_backend() -> None:
    plan = plan_run("auto", "auto", "none", cpu(BF16_CPU))
    assert (plan.choice.backend, plan.precision, plan.gated) == ("openvino", "bfloat16", True)
    torch_only = plan_run("auto", "auto", "none", cpu(BF16_CPU, frozenset({"torch"})))
    assert (torch_only.choice.backend, torch_only.precision) == ("torch", "bfloat16")
    # without OpenVINO, bf16 goes to torch: ONNX Runtime has no bf16
    no_openvino = plan_run("auto", "auto", "none", cpu(BF16_CPU, frozenset({"torch", "onnx"})))
    assert no_openvino.choice.backend == "torch"


def test_auto_picks_float32_where_bf16_is_not_native() -> None:
    plan = plan_run("auto", "auto", "none", cpu(AVX2_CPU))
    assert (plan.choice.backend, plan.precision, plan.gated) == ("openvino", "float32", False)
    onnx_only = plan_run("auto", "auto", "none", cpu(AVX2_CPU, frozenset({"torch", "onnx"})))
    assert (onnx_only.choice.backend, onnx_only.precision) == ("onnx", "float32")
    for backend in ("torch", "openvino"):
        assert plan_run(backend, "auto", "none", cpu(AVX2_CPU)).precision == "float32"


def test_auto_falls_back_to_torch_when_nothing_else_is_installed() -> None:
    for cpu_info in (BF16_CPU, AVX2_CPU):
        plan = plan_run("auto", "auto", "none", cpu(cpu_info, frozenset({"torch"})))
        assert plan.choice.backend == "torch"


def test_auto_on_cuda_is_torch_float16_and_float32_is_always_exact() -> None:
    plan = plan_run("auto", "auto", "none", cpu(BF16_CPU, accelerator="cuda"))
    assert (plan.choice.backend, plan.precision, plan.gated) == ("torch", "float16", False)
    exact = plan_run("auto", "float32", "none", cpu(BF16_CPU))
    assert (exact.precision, exact.gated) == ("float32", False)
    assert plan_run("auto", "auto", "none", cpu(BF16_CPU, accelerator="mps")).precision == (
        "float32"
    )


def test_quantised_plans_and_what_cannot_run_are_refused_clearly() -> None:
    assert plan_run("auto", "auto", "int8", cpu(BF16_CPU)).choice.backend == "torch"
    static = plan_run("auto", "auto", "int8-static", cpu(BF16_CPU, frozenset({"torch", "onnx"})))
    assert (static.choice.backend, static.precision) == ("onnx", "float32")
    assert plan_run("onnx", "auto", "none", cpu(BF16_CPU)).precision == "float32"
    with pytest.raises(ConfigError, match=r"ONNX Runtime runs the export in float32 only"):
        plan_run("onnx", "bfloat16", "none", cpu(BF16_CPU))
    with pytest.raises(ConfigError, match=r"quantize='int8' runs float32"):
        plan_run("torch", "bfloat16", "int8", cpu(BF16_CPU))
    # OpenVINO int8 with bf16 around the int8 layers, asked by name on a native-bf16 CPU (#35)
    mixed = plan_run("openvino", "bfloat16", "int8-static", cpu(BF16_CPU))
    assert (mixed.choice.backend, mixed.choice.quantize, mixed.precision) == (
        "openvino", "int8-static", "bfloat16")  # fmt: skip
    assert plan_run("openvino", "auto", "int8-static", cpu(BF16_CPU)).precision == "float32"
    with pytest.raises(ConfigError, match=r"'bfloat16' around int8 layers needs a CPU with native"):
        plan_run("openvino", "bfloat16", "int8-static", cpu(AVX2_CPU))
    with pytest.raises(ConfigError, match=r"quantize='int8-static' runs float32"):
        plan_run("openvino", "float16", "int8-static", cpu(BF16_CPU))
    with pytest.raises(ConfigError, match=r"precision='fp8' is not one of auto, float32"):
        plan_run("auto", "fp8", "none", cpu(BF16_CPU))
    with pytest.raises(ConfigError, match=r"backend='tensorrt' is not one of auto, torch"):
        plan_run("tensorrt", "auto", "none", cpu(BF16_CPU))


def test_dtype_is_the_older_name_of_precision() -> None:
    assert precision_option(None, "bfloat16") == "bfloat16"
    assert precision_option("float32", "float32") == "float32"
    assert precision_option(None, None) is None
    with pytest.raises(ConfigError, match="dtype='fp8' is not one of"):
        precision_option(None, "fp8")
    with pytest.raises(ConfigError, match="precision='float32' and dtype='bfloat16' disagree"):
        precision_option("float32", "bfloat16")


def test_the_gate_holds_at_its_thresholds() -> None:
    assert BF16_GATE.holds(Accuracy(0.9999, 0.9998, 48))
    assert not BF16_GATE.holds(Accuracy(0.99989, 0.9999, 48))
    assert not BF16_GATE.holds(Accuracy(0.99999, 0.99979, 48))
    ref = np.eye(3, dtype=np.float32)
    assert judge(ref, ref, scores=False).precision == "bfloat16"
    off = ref + np.float32(0.02) * np.roll(ref, 1, axis=1)  # cosine 0.9998 per row
    assert judge(ref, off, scores=False).precision == "float32"
    scores = np.array([[1.0], [2.0], [4.0]], dtype=np.float32)
    assert judge(scores, scores + 100, scores=True).precision == "bfloat16"  # a shift: same order
    assert judge(scores, scores[::-1].copy(), scores=True).precision == "float32"
    assert len(gate_texts()) == 48 and len(set(gate_texts())) == 48


def test_encoder_names_the_precision_it_ran_and_the_gate_is_kept(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``auto`` on this machine: the encoder, its config, the contract and the cached verdict
    agree on the precision, and the runtime really runs at it."""
    lines: list[str] = []
    enc = Encoder(tiny_bert_dir, cache_dir=tmp_path, report=lines.append)
    native = device_module.cpu_info().native_bf16
    gates = list((tmp_path / GATE_DIR).glob("*.json"))
    if native:
        (gate,) = gates
        verdict = json.loads(gate.read_text())
        assert enc.precision == verdict["precision"]
        assert any("precision auto:" in line and verdict["precision"] in line for line in lines)
    else:
        assert enc.precision == "float32" and not gates
    assert enc.config.precision == enc.precision == enc.runtime.precision
    assert IndexContract.from_encoder(enc.config).precision == enc.precision
    if enc.choice.backend == "openvino":
        compiled = enc.runtime.request.get_compiled_model()  # type: ignore[attr-defined]
        ran = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        assert {"f32": "float32", "bf16": "bfloat16"}[ran] == enc.precision
    # decided once: a second encoder reads the verdict, measuring nothing
    monkeypatch.setattr("es_semantic.encoding.loading._measure", _no_measure)
    again = Encoder(tiny_bert_dir, cache_dir=tmp_path, report=lines.append)
    assert again.precision == enc.precision
    described = describe_encoder(tiny_bert_dir, cache_dir=tmp_path)
    assert (described.backend, described.precision) == (enc.choice.backend, enc.precision)


def test_a_failed_gate_runs_float32(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached verdict of float32 (bf16 below the gate) makes ``auto`` run float32."""
    monkeypatch.setattr(device_module, "cpu_info", lambda: BF16_CPU)
    first = Encoder(tiny_bert_dir, backend="torch", cache_dir=tmp_path)
    (gate,) = (tmp_path / GATE_DIR).glob("*-torch-*.json")
    assert gate.name.endswith(f"-{BF16_CPU.kind}.json") and first.precision == "bfloat16"
    failed = json.loads(gate.read_text())
    failed.update(precision="float32", accuracy={"mean_cosine": 0.99, "min_cosine": 0.98,
                                                 "texts": 48})  # fmt: skip
    gate.write_text(json.dumps(failed))
    enc = Encoder(tiny_bert_dir, backend="torch", cache_dir=tmp_path)
    assert (enc.precision, enc.config.precision, enc.runtime.precision) == ("float32",) * 3
    assert enc.runtime.autocast is None  # type: ignore[attr-defined]
    assert describe_encoder(tiny_bert_dir, backend="torch", cache_dir=tmp_path).precision == (
        "float32"
    )


def test_auto_is_float32_on_a_cpu_without_bf16(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(device_module, "cpu_info", lambda: AVX2_CPU)
    enc = Encoder(tiny_bert_dir, backend="torch", cache_dir=tmp_path)
    assert (enc.precision, enc.torch_dtype) == ("float32", device_module.torch.float32)
    assert not (tmp_path / GATE_DIR).exists()  # nothing to measure


def test_auto_falls_back_to_torch_without_onnxruntime_and_openvino(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert device_module.installed_backends() == {"torch"}
    enc = Encoder(tiny_bert_dir, cache_dir=tmp_path)
    assert enc.choice.backend == enc.config.backend == "torch"
    assert enc.encode_documents(TEXTS).shape == (3, 32)


def test_a_driver_plans_for_cuda_workers_without_a_gpu(tiny_bert_dir: Path) -> None:
    """describe_encoder (the Ray driver's contract) takes a named device as it is."""
    described = describe_encoder(tiny_bert_dir, device="cuda")
    assert (described.backend, described.precision) == ("torch", "float16")
    if not device_module.torch.cuda.is_available():
        with pytest.raises(ConfigError, match="asked for CUDA"):
            Encoder(tiny_bert_dir, device="cuda")


def test_queries_at_another_precision_stay_compatible(tiny_bert_dir: Path, tmp_path: Path) -> None:
    documents = Encoder(tiny_bert_dir, backend="torch", precision="bfloat16")
    queries = Encoder(tiny_bert_dir, backend="torch", precision="float32")
    contract = IndexContract.from_encoder(documents.config)
    back = IndexContract.from_meta(contract.to_meta(), "docs")
    assert (back.backend, back.precision) == ("torch", "bfloat16")
    assert back.differences(queries.config, for_indexing=False) == []
    # an index made before precision was recorded reads as float32
    old = contract.to_meta()
    del old["es_semantic"]["precision"]
    assert IndexContract.from_meta(old, "old").precision == "float32"


def test_onnx_refuses_bf16_naming_what_to_do(tiny_bert_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ONNX Runtime .* float32 only; use backend 'openvino'"):
        Encoder(tiny_bert_dir, backend="onnx", precision="bfloat16", cache_dir=tmp_path)
    assert not list(tmp_path.glob("exports/*/*"))  # refused before anything was built


def test_cli_precision_option_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from es_semantic.cli import cli
    from es_semantic.cli.common import Settings, model_options

    assert model_options(Settings())["precision"] == "auto"
    assert model_options(Settings())["backend"] == "auto"
    monkeypatch.setenv("ES_SEMANTIC_PRECISION", "float32")
    assert model_options(Settings())["precision"] == "float32"
    assert model_options(Settings({"precision": "bfloat16"}))["precision"] == "bfloat16"
    monkeypatch.setenv("ES_SEMANTIC_PRECISION", "fp8")
    with pytest.raises(ConfigError, match="ES_SEMANTIC_PRECISION='fp8' is not one of auto"):
        model_options(Settings())
    shown = CliRunner().invoke(cli, ["search", "--help"]).output
    assert "--precision [auto|float32|bfloat16|float16]" in shown
    assert "--backend [auto|torch|onnx|openvino]" in shown


def _no_measure(*args: object) -> None:
    raise AssertionError("the gate was measured again")
