"""Topic clusters, pure: k-means over document vectors, central documents, c-TF-IDF labels.

Labels are class-based TF-IDF (as BERTopic computes it): each cluster's texts are one class;
a term scores ``tf(t, c) * log(1 + A / f(t))`` with ``A`` the average number of words per
class and ``f(t)`` the term's frequency over all classes, so words frequent in one cluster and
rare elsewhere win. Latin words (stop words dropped) and CJK character bigrams are terms.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from es_semantic.errors import MissingDependencyError

_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
STOP_WORDS = frozenset(
    "the and for are but not you all any can had her was one our out has him his how man new "
    "now old see two way who its did get may use with that this from they will would there "
    "their what about which when make like time just know take into year your some could them "
    "than then look only come over also back after work first well even want because these "
    "give most were been have more such here where while should each other those very much "
    "many being both through between during before under again further once same own into "
    "using used without within upon among".split()
)


@dataclass
class Topic:
    """One cluster: its size, the documents nearest its centre and its label terms."""

    id: int
    size: int = 0
    terms: list[str] = field(default_factory=list)
    central: list[tuple[str, float, str]] = field(default_factory=list)  # id, cosine, snippet

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "size": self.size,
            "terms": self.terms,
            "central": [
                {"id": i, "similarity": round(s, 4), "snippet": t} for i, s, t in self.central
            ],
        }


def terms_of(text: str) -> list[str]:
    """Lower-cased words of 3+ letters without stop words, and CJK character bigrams."""
    found = [w for w in (m.lower() for m in _WORD.findall(_CJK.sub(" ", text)))
             if w not in STOP_WORDS]  # fmt: skip
    for run in _CJK.findall(text):
        found += [run[i : i + 2] for i in range(len(run) - 1)] or [run]
    return found


def ctfidf_labels(counts: Sequence[Counter[str]], top: int) -> list[list[str]]:
    """The ``top`` terms of each class by class-based TF-IDF."""
    overall: Counter[str] = Counter()
    for class_counts in counts:
        overall.update(class_counts)
    average = sum(overall.values()) / max(len(counts), 1)
    labels = []
    for class_counts in counts:
        total = sum(class_counts.values()) or 1
        scored = {t: (n / total) * math.log(1 + average / overall[t])
                  for t, n in class_counts.items()}  # fmt: skip
        labels.append([t for t, _ in sorted(scored.items(), key=lambda x: (-x[1], x[0]))[:top]])
    return labels


def kmeans(vectors: npt.NDArray[np.float32], k: int, seed: int) -> Any:
    """scikit-learn's MiniBatchKMeans (the ``cluster`` extra) fitted on ``vectors`` (unit
    rows: k-means on them clusters by cosine)."""
    try:
        from sklearn.cluster import MiniBatchKMeans
    except ImportError as exc:
        raise MissingDependencyError("scikit-learn", "cluster", "topic clusters") from exc
    model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3,
                            batch_size=max(1024, 3 * k))  # fmt: skip
    model.fit(vectors)
    return model
