"""Fine-tuning on a tiny random BERT: each loss trains (loss goes down), the folder loads in
Encoder and gives other vectors, the record says where it came from; bad files fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from es_semantic.encoding.encoder import Encoder
from es_semantic.errors import ConfigError, InputError
from es_semantic.training.data import read_pairs, split_dev
from tests.tiny_models import WORDS

pytest.importorskip("datasets", reason="the train extra is not installed")
from es_semantic.training.finetune import finetune, loss_candidates
from es_semantic.training.run import RECORD_FILE, TrainSettings, read_record

NOUNS = [w for w in WORDS if w.isalpha() and len(w) > 3]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def scored_rows(n: int = 48) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        a = list(rng.choice(NOUNS, 4))
        shared = i % 5  # 0..4 words in common: the score
        b = a[:shared] + list(rng.choice(NOUNS, 4 - shared))
        rows.append({"sentence1": " ".join(a), "sentence2": " ".join(b) + " the",
                     "score": float(shared)})  # fmt: skip
    return rows


@pytest.mark.parametrize(
    ("kind", "loss"),
    [("scored", "auto"), ("scored", "cosent"), ("labelled", "auto"), ("queries", "auto")],
)
def test_each_loss_trains_and_the_folder_loads(
    tiny_st_dir: Path, tmp_path: Path, kind: str, loss: str
) -> None:
    rows = scored_rows()
    if kind == "labelled":
        rows = [{"sentence1": r["sentence1"], "sentence2": r["sentence2"],
                 "label": int(r["score"] >= 2)} for r in rows]  # fmt: skip
    elif kind == "queries":
        rows = [{"query": r["sentence1"], "positive": r["sentence1"].split()[0] + " city"}
                for r in rows]  # fmt: skip
    train = read_pairs(write(tmp_path / "train.jsonl", rows))
    assert train.kind == kind
    out = tmp_path / "out"
    lines: list[str] = []
    # keep_trained: this checks that each loss trains; the guard has its own tests
    report = finetune(str(tiny_st_dir), train, out, loss=loss, report=lines.append,
                      progress=False, settings=TrainSettings(epochs=3, batch_size=8, lr=1e-3,
                                                             device="cpu", keep_trained=True))  # fmt: skip
    if kind == "scored" and loss == "auto":  # a trial of each scored-pair loss chose it
        assert report.loss == max(report.loss_trials, key=lambda t: t["dev"])["loss"]
    else:
        auto = {"scored": "cosent", "labelled": "contrastive", "queries": "mnrl"}[kind]
        assert report.loss == (auto if loss == "auto" else loss) and not report.loss_trials
    assert len(report.losses) == 3 and report.losses[-1] < report.losses[0]
    assert any("cut from" in line for line in lines)  # no --dev: a split, said out loud
    assert report.dev_rows + report.train_rows == len(rows)
    assert report.metric in report.before and report.metric in report.after
    tuned, base = Encoder(out), Encoder(tiny_st_dir)
    texts = [r.get("sentence1") or r["query"] for r in rows[:4]]
    assert tuned.dim == base.dim
    assert not np.allclose(tuned.encode_documents(texts), base.encode_documents(texts), atol=1e-3)
    record = read_record(out)
    assert record is not None and (out / RECORD_FILE).is_file()
    assert record["base_model"] == str(tiny_st_dir) and record["loss"] == report.loss
    assert (
        record["train"]["sha256_16"] == train.subset(range(report.train_rows)).digest()
        or len(record["train"]["sha256_16"]) == 16
    )
    assert not (out / "checkpoints").exists()


def test_dev_split_never_overlaps(tmp_path: Path) -> None:
    pairs = read_pairs(write(tmp_path / "t.jsonl", scored_rows(200)))
    train, dev = split_dev(pairs)
    assert len(train) + len(dev) == 200 and 5 <= len(dev) <= 40
    assert not set(train.first) & set(dev.first)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ('{"a": "x", "b": "y"}\n', r"t.jsonl:1: columns \['a', 'b'\] are not scored pairs"),
        ('{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "a", "sentence2": "b", '
         '"score": "high"}\n', r"t.jsonl:2: score 'high' is not a number"),
        ('{"sentence1": "a", "sentence2": "b", "label": 3}\n', "t.jsonl:1: label must be 0 or 1"),
        ('{"query": "a", "positive": ""}\n', "t.jsonl:1: 'query' and 'positive' must be non-empty"),
        ("{broken\n", r"t.jsonl:1: not valid JSON"),
        ("sentence1\tsentence2\tscore\na\tb\n", r"t.jsonl:2: 2 columns, 3 expected"),
    ],
)  # fmt: skip
def test_bad_training_files_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_pairs(path)


def test_sts_b_layout_without_header_and_score_range(tmp_path: Path) -> None:
    path = tmp_path / "zh.tsv"
    path.write_text(
        "一架飞机要起飞了。\t一架飞机正在起飞。\t5\n一个男人在吹笛子。\t一个人在弹吉他。\t1\n"
    )
    pairs = read_pairs(path)
    assert pairs.kind == "scored" and pairs.scores == [1.0, 0.0]


def test_auto_loss_on_scored_pairs_keeps_the_loss_whose_trial_scored_best_on_dev(
    tiny_st_dir: Path, tmp_path: Path
) -> None:
    train = read_pairs(write(tmp_path / "train.jsonl", scored_rows()))
    lines: list[str] = []
    report = finetune(str(tiny_st_dir), train, tmp_path / "out", report=lines.append,
                      progress=False, settings=TrainSettings(epochs=1, batch_size=8, lr=1e-3,
                                                             device="cpu", keep_trained=True))  # fmt: skip
    assert [t["loss"] for t in report.loss_trials] == ["cosent", "cosine"]
    dev = {t["loss"]: t["dev"] for t in report.loss_trials}
    assert len(set(dev.values())) == 2  # two different runs, each scored
    assert report.loss == max(dev, key=lambda loss: dev[loss])
    assert sum("--loss auto" in line for line in lines) == 3  # each trial, then the choice
    assert read_record(tmp_path / "out")["result"]["loss_trials"] == report.loss_trials


def test_auto_loss_and_auto_lr_do_not_run_the_same_trial_twice(
    tiny_st_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import es_semantic.training.finetune as ft

    runs: list[int] = []
    real = ft.run_trial
    monkeypatch.setattr(ft, "run_trial", lambda *a: (runs.append(1), real(*a))[1])
    train = read_pairs(write(tmp_path / "train.jsonl", scored_rows()))
    report = finetune(str(tiny_st_dir), train, tmp_path / "out", report=lambda _: None,
                      progress=False, settings=TrainSettings(epochs=1, batch_size=8, lr="auto",
                                                             device="cpu"))  # fmt: skip
    # two losses at the default rate, then three rates for the chosen loss: one of them is
    # the loss trial already run at the default rate
    assert len(report.loss_trials) == 2 and len(report.lr_trials) == 3
    assert len(runs) == 4
    chosen = next(t for t in report.loss_trials if t["loss"] == report.loss)
    assert chosen["dev"] == next(t["dev"] for t in report.lr_trials if t["lr"] == 2e-5)


def test_a_loss_that_does_not_fit_the_rows_is_refused(tmp_path: Path) -> None:
    pairs = read_pairs(write(tmp_path / "t.jsonl", scored_rows(4)))
    assert loss_candidates("auto", pairs) == ("cosent", "cosine")
    assert loss_candidates("cosine", pairs) == ("cosine",)
    with pytest.raises(ConfigError, match="--loss mnrl needs queries rows"):
        loss_candidates("mnrl", pairs)


def test_reranker_trains_and_loads_in_cross_encoder(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from es_semantic.encoding.reranker import CrossEncoder
    from es_semantic.training.reranker import train_reranker

    rows = [{"query": r["sentence1"], "positive": r["sentence1"] + " the",
             "negative": r["sentence2"]} for r in scored_rows(60) if r["score"] < 3]  # fmt: skip
    train = read_pairs(write(tmp_path / "rr.jsonl", rows))
    report = train_reranker(str(tiny_bert_dir), train, tmp_path / "rr", progress=False,
                            report=lambda _: None,
                            settings=TrainSettings(epochs=3, batch_size=8, lr=1e-3, device="cpu"))  # fmt: skip
    assert report.losses[-1] < report.losses[0]
    assert report.metric == "dev_ndcg@10" and report.metric in report.after
    scores = CrossEncoder(tmp_path / "rr").score(rows[0]["query"], [rows[0]["positive"],
                                                                   rows[0]["negative"]])  # fmt: skip
    assert scores.shape == (2,) and scores[0] != scores[1]


def test_reranker_needs_negatives(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from es_semantic.training.reranker import train_reranker

    train = read_pairs(write(tmp_path / "q.jsonl", [{"query": "a b", "positive": "c d"}] * 20))
    with pytest.raises(ConfigError, match="--hard-negatives-from INDEX"):
        train_reranker(str(tiny_bert_dir), train, tmp_path / "rr", report=lambda _: None)


def test_a_worse_model_is_said_out_loud() -> None:
    from es_semantic.training.run import TrainReport, warn_if_worse

    said: list[str] = []
    worse = TrainReport("out", "cosent", "m", {"m": 0.86}, {"m": 0.85}, 10, 2, "dev", 1.0, 1.0)
    warn_if_worse(worse, said.append)
    assert said and "worse than the base" in said[0] and "0.8600 -> 0.8500" in said[0]
    better = TrainReport("out", "cosent", "m", {"m": 0.80}, {"m": 0.85}, 10, 2, "dev", 1.0, 1.0)
    warn_if_worse(better, said.append)
    assert len(said) == 1


def test_the_base_kept_after_lr_auto_does_not_advise_lr_auto() -> None:
    from es_semantic.training.run import TrainReport, warn_if_worse

    said: list[str] = []
    base = TrainReport("out", "cosent", "m", {"m": 0.8673}, {"m": 0.8673}, 10, 2, "dev", 1.0, 1.0,
                       dev_scores=[0.8673, 0.8538], kept="base")  # fmt: skip
    warn_if_worse(base, said.append)
    assert "try --lr auto" in said[0]
    auto = TrainReport("out", "cosent", "m", {"m": 0.8673}, {"m": 0.8673}, 10, 2, "dev", 1.0, 1.0,
                       dev_scores=[0.8673, 0.8538], kept="base", lr=2e-5,
                       lr_trials=[{"lr": 2e-5, "dev": 0.8755}])  # fmt: skip
    warn_if_worse(auto, said.append)
    assert "--lr auto trials chose 2e-05: try a lower --lr" in said[1]
    assert "try --lr auto" not in said[1] and "BASE model" in said[1]


def test_fp16_is_refused_off_cuda_and_cpu_runs_pin_no_memory(tmp_path: Path) -> None:
    from es_semantic.training.run import check_device, trainer_args

    with pytest.raises(ConfigError, match="--fp16 is for CUDA GPUs"):
        check_device(TrainSettings(fp16=True, device="cpu"))
    check_device(TrainSettings(fp16=True, device="cuda"))  # named CUDA: accepted before loading
    args = trainer_args(tmp_path, TrainSettings(device="cpu"), "m", progress=False)
    assert args["use_cpu"] is True and args["dataloader_pin_memory"] is False
    on_gpu = trainer_args(tmp_path, TrainSettings(device="cuda:0"), "m", progress=False)
    assert on_gpu["dataloader_pin_memory"] is True and on_gpu["use_cpu"] is False


def test_positives_weigh_as_much_as_their_negatives() -> None:
    from es_semantic.training.reranker import positive_weight

    assert positive_weight([1, 0, 0, 0, 1, 0, 0, 0]) == 3.0  # three mined negatives each
    assert positive_weight([1, 0, 1, 1]) == 1.0  # more positives than negatives: no down-weighting
    assert positive_weight([0, 0]) == 1.0


def test_finetune_reranker_trains_with_its_own_defaults(tiny_bert_dir: Path,
                                                        tmp_path: Path) -> None:  # fmt: skip
    """A reranker's head starts from scratch: its command defaults to more, faster steps than
    the bi-encoder's, and the record says which settings ran."""
    from click.testing import CliRunner

    from es_semantic.cli import cli

    rows = [{"query": r["sentence1"], "positive": r["sentence1"] + " the",
             "negative": r["sentence2"]} for r in scored_rows(40)]  # fmt: skip
    train = write(tmp_path / "rr.jsonl", rows)
    result = CliRunner().invoke(cli, ["--device", "cpu", "finetune-reranker", "--base",
                                      str(tiny_bert_dir), "--train", str(train), "--out",
                                      str(tmp_path / "rr"), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    settings = read_record(tmp_path / "rr")["settings"]  # type: ignore[index]
    assert (settings["epochs"], settings["batch_size"], settings["lr"]) == (3, 16, 5e-5)
    assert len(json.loads(result.stdout)["losses"]) == 3
    help_text = " ".join(CliRunner().invoke(cli, ["finetune", "--help"]).output.split())
    assert "[default: 1;" in help_text and "[default: 2e-05]" in help_text
