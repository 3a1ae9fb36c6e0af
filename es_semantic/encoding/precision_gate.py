"""The bf16 gate of ``precision="auto"``: bf16 vectors against float32 ones on a fixed sample,
decided once per model, head, backend and CPU kind, and kept as a small JSON file beside the
export cache (``<cache>/precision-gates/``). Delete the file to measure again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from es_semantic._version import __version__
from es_semantic.encoding.backend import BF16_GATE, Accuracy, CpuInfo, measure_accuracy

GATE_DIR = "precision-gates"
GATE_BATCH = 8
FloatArray = npt.NDArray[np.float32]

# The fixed sample: plain sentences of several fields, alone, in pairs and run together into
# long texts, so short and window-long sequences are both measured.
SENTENCES = (
    "Aspirin lowers the risk of a second heart attack in patients with coronary disease.",
    "The river flooded the lower town after three days of heavy rain in the mountains.",
    "How do I reset the password of my account when the recovery email no longer works?",
    "Mitochondria produce most of the chemical energy needed to power a cell.",
    "The central bank raised interest rates by a quarter point to slow inflation.",
    "Vector search finds passages whose embeddings lie close to the query's embedding.",
    "A balanced diet with enough fibre reduces the risk of colon cancer.",
    "The orchestra played Beethoven's ninth symphony to a sold-out hall.",
    "Glaciers in the Alps have lost more than half of their volume since 1900.",
    "Install the package with pip and set the cluster URL in an environment variable.",
    "Children who sleep less than eight hours score lower on attention tests.",
    "The treaty was signed in 1648 and ended thirty years of war in Europe.",
    "Photosynthesis turns carbon dioxide and water into sugar using light.",
    "Our quarterly revenue grew 12% while operating costs stayed flat.",
    "The vaccine produced neutralising antibodies in 95% of the trial participants.",
    "A red fox crossed the frozen lake at dawn, leaving a line of small tracks.",
    "Which antibiotics are safe to take during the first trimester of pregnancy?",
    "The compiler reports an error when a variable is used before it is declared.",
    "Coffee consumption was not associated with higher mortality in the cohort.",
    "Wind turbines now supply a fifth of the country's electricity.",
)


def gate_texts() -> list[str]:
    """The fixed sample (48 texts): each sentence, consecutive pairs, long runs."""
    n = len(SENTENCES)
    pairs = [f"{SENTENCES[i]} {SENTENCES[(i + 1) % n]}" for i in range(0, n, 2)]
    runs = [" ".join(SENTENCES[(i + j) % n] for j in range(6 + i % 9)) for i in range(18)]
    return [*SENTENCES, *pairs, *runs]


def gate_pairs() -> tuple[list[str], list[str]]:
    """(query, passage) pairs for a score head: each sentence against a longer text."""
    texts = gate_texts()
    return list(SENTENCES) * 2, [texts[(i + 7) % len(texts)] for i in range(2 * len(SENTENCES))]


@dataclass(frozen=True)
class Verdict:
    """What the gate decided for one model, head, backend and CPU kind."""

    precision: str  # what auto runs there: bfloat16 when it held, float32 when not
    accuracy: Accuracy  # bf16 against float32 on the sample

    def describe(self) -> str:
        a = self.accuracy
        return f"mean cosine {a.mean_cosine:.6f}, min {a.min_cosine:.6f} over {a.texts}"

    def to_json(self, **info: Any) -> dict[str, Any]:
        gate = {"mean_cosine": BF16_GATE.mean_cosine, "min_cosine": BF16_GATE.min_cosine}
        return {"precision": self.precision, "accuracy": self.accuracy.to_json(), "gate": gate,
                "es_semantic_version": __version__, **info}  # fmt: skip


def gate_file(root: Path, fingerprint: str, head_key: str, backend: str, cpu: CpuInfo) -> Path:
    return root / GATE_DIR / f"{fingerprint}-{head_key}-{backend}-{cpu.kind}.json"


def read_verdict(path: Path) -> Verdict | None:
    """The cached verdict, or ``None`` (none yet, or unreadable: measured again)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Verdict(str(data["precision"]), Accuracy.from_json(data["accuracy"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_verdict(path: Path, verdict: Verdict, **info: Any) -> None:
    """Written whole or not at all (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".gate-", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(verdict.to_json(**info), out, indent=2)
    os.replace(tmp, path)


def judge(reference: FloatArray, candidate: FloatArray, *, scores: bool) -> Verdict:
    """bf16 against float32: row cosines of vectors; for a score head (one or two logits a
    pair), the correlation of each label's scores over the sample (a cosine of centred columns)."""
    if scores:
        reference = (reference - reference.mean(axis=0)).T.copy()
        candidate = (candidate - candidate.mean(axis=0)).T.copy()
    accuracy = measure_accuracy(reference, candidate)
    return Verdict("bfloat16" if BF16_GATE.holds(accuracy) else "float32", accuracy)


def run_sample(
    run: Callable[[Any], FloatArray], batches: Callable[[], Iterator[Any]]
) -> FloatArray:
    return np.concatenate([run(feeds) for feeds in batches()])


def sample_batches(
    feeds: Callable[[Sequence[str], Sequence[str] | None], Any], pairs: bool
) -> Callable[[], Iterator[Any]]:
    """The sample tokenised in batches of :data:`GATE_BATCH`, as ``feeds`` makes them."""
    texts, others = gate_pairs() if pairs else (gate_texts(), None)

    def batches() -> Iterator[Any]:
        for start in range(0, len(texts), GATE_BATCH):
            end = start + GATE_BATCH
            yield feeds(texts[start:end], others[start:end] if others else None)

    return batches
