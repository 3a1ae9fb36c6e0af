"""Fine-tuning never hands back a model worse than its base on the dev rows: the base is epoch
0, and when no epoch beats it the base is saved (and the report and --json say so);
``--lr auto`` runs its short trials and trains with the best one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from es_semantic.cli import cli
from es_semantic.training.data import read_pairs, split_dev
from tests.tiny_models import WORDS

pytest.importorskip("datasets", reason="the train extra is not installed")
from es_semantic.training import run as training_run
from es_semantic.training.finetune import finetune
from es_semantic.training.run import TrainSettings, read_record

NOUNS = [w for w in WORDS if w.isalpha() and len(w) > 3]


def scored_file(path: Path, n: int = 120) -> Path:
    """Pairs scored by how many of four words they share: a tiny model can learn it."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        a = list(rng.choice(NOUNS, 4))
        shared = i % 5
        b = a[:shared] + list(rng.choice(NOUNS, 4 - shared))
        rows.append({"sentence1": " ".join(a), "sentence2": " ".join(b), "score": shared})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_diverging_run_hands_back_the_base_and_says_so(tiny_st_dir: Path,
                                                          tmp_path: Path) -> None:  # fmt: skip
    train = scored_file(tmp_path / "train.jsonl")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["--device", "cpu", "finetune", "--base", str(tiny_st_dir),
                                      "--train", str(train), "--out", str(out), "--lr", "50",
                                      "--epochs", "2", "--batch-size", "8", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kept"] == "base"
    assert len(report["dev_scores"]) == 1 + 2 * 4  # the base, then 4 points in each epoch
    assert report["dev_scores"][0] == report["before"][report["metric"]]
    assert report["after"] == report["before"]
    assert "the BASE model was saved" in result.stderr
    for name in ("model.safetensors", "config_sentence_transformers.json", "modules.json"):
        assert (out / name).read_bytes() == (tiny_st_dir / name).read_bytes()  # the base itself
    record = read_record(out)
    assert record is not None and record["result"]["kept"] == "base"


def test_a_run_that_learns_keeps_the_trained_model(tiny_st_dir: Path, tmp_path: Path) -> None:
    train = read_pairs(scored_file(tmp_path / "train.jsonl"))
    report = finetune(str(tiny_st_dir), train, tmp_path / "out", progress=False,
                      report=lambda _: None,
                      settings=TrainSettings(epochs=3, batch_size=8, lr=1e-3, device="cpu"))  # fmt: skip
    assert report.kept == "trained" and len(report.dev_scores) == 1 + 3 * 4
    assert max(report.dev_scores[1:]) > report.dev_scores[0]
    assert report.after[report.metric] == max(report.dev_scores[1:])


def test_scoring_more_often_adds_points_and_keeps_the_best(tiny_st_dir: Path,
                                                           tmp_path: Path) -> None:  # fmt: skip
    """Scored four times an epoch, training is the same as scored once (same losses, same
    scores at each epoch's end: scoring must not draw from training's random numbers), and
    the folder saved is the best point, mid-epoch or not."""
    from sentence_transformers import SentenceTransformer

    from es_semantic.training.finetune import bi_encoder_evaluator

    train, dev = split_dev(read_pairs(scored_file(tmp_path / "train.jsonl")))
    reports = {
        n: finetune(str(tiny_st_dir), train, tmp_path / f"out{n}", dev=dev, progress=False,
                    report=lambda _: None, settings=TrainSettings(
                        epochs=3, batch_size=8, lr=1e-3, device="cpu", evals_per_epoch=n))
        for n in (1, 4)
    }  # fmt: skip
    once, often = reports[1], reports[4]
    assert len(once.dev_scores) == 1 + 3 and len(often.dev_scores) == 1 + 3 * 4
    assert often.losses == once.losses
    assert often.dev_scores[::4] == once.dev_scores  # the base, then each epoch's end
    evaluator, key = bi_encoder_evaluator(dev)
    saved = float(evaluator(SentenceTransformer(str(tmp_path / "out4"), device="cpu"))[key])
    assert often.kept == "trained"
    assert saved == pytest.approx(max(often.dev_scores[1:]), abs=1e-6)


@pytest.mark.parametrize(("steps", "per_epoch", "points"), [
    (14, 4, {4, 7, 11}), (9, 4, {3, 5, 7}), (2, 4, {1}), (10, 1, set()), (1, 3, set()),
])  # fmt: skip
def test_dev_points_are_spread_through_the_epoch(steps: int, per_epoch: int,
                                                 points: set[int]) -> None:  # fmt: skip
    assert training_run.within_epoch(steps, per_epoch) == points


def test_keep_trained_saves_the_best_epoch_even_when_worse(tiny_st_dir: Path,
                                                           tmp_path: Path) -> None:  # fmt: skip
    train = read_pairs(scored_file(tmp_path / "train.jsonl"))
    said: list[str] = []
    report = finetune(str(tiny_st_dir), train, tmp_path / "out", progress=False,
                      report=said.append, settings=TrainSettings(
                          epochs=1, batch_size=8, lr=50.0, device="cpu", keep_trained=True))  # fmt: skip
    assert report.kept == "trained"
    assert report.after[report.metric] < report.before[report.metric]
    weights = "model.safetensors"
    assert (tmp_path / "out" / weights).read_bytes() != (tiny_st_dir / weights).read_bytes()
    assert any("worse than the base" in line for line in said)


def test_lr_auto_runs_its_trials_and_trains_with_the_best(
    tiny_st_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a rate too small to move the weights, one that learns, one that diverges
    monkeypatch.setattr(training_run, "AUTO_LRS", (1e-9, 1e-3, 50.0))
    train = scored_file(tmp_path / "train.jsonl", n=200)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["--device", "cpu", "finetune", "--base", str(tiny_st_dir),
                                      "--train", str(train), "--out", str(out), "--lr", "auto",
                                      "--batch-size", "8"])  # fmt: skip
    assert result.exit_code == 0, result.output
    trials = read_record(out)["result"]["lr_trials"]  # type: ignore[index]
    assert [t["lr"] for t in trials] == [1e-9, 1e-3, 50.0]
    assert trials[1]["dev"] > trials[0]["dev"] and trials[1]["dev"] > trials[2]["dev"]
    assert read_record(out)["settings"]["lr"] == 1e-3  # type: ignore[index]
    for lr in ("1e-09", "0.001", "50"):
        assert f"--lr auto trial: lr {lr}: dev" in result.stdout
    assert "lr 0.001; dev" in result.stdout


@pytest.mark.parametrize("value", ["fast", "0", "-1e-5"])
def test_a_bad_lr_is_refused_naming_it(tiny_st_dir: Path, tmp_path: Path, value: str) -> None:
    result = CliRunner().invoke(cli, ["finetune", "--base", str(tiny_st_dir), "--train",
                                      str(scored_file(tmp_path / "t.jsonl", 10)), "--out",
                                      str(tmp_path / "o"), "--lr", value])  # fmt: skip
    assert result.exit_code == 2
    assert "--lr" in result.output and value in result.output and "auto" in result.output
