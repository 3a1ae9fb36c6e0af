"""``es-semantic doctor``: what will work on this cluster with this model (facts gathered by
a thin shell, findings decided by a pure core)."""

from es_semantic.doctor.checks import diagnose
from es_semantic.doctor.facts import Facts, IndexFacts, ModelFacts
from es_semantic.doctor.findings import Finding, exit_code, render_json, render_text

__all__ = [
    "Facts",
    "Finding",
    "IndexFacts",
    "ModelFacts",
    "diagnose",
    "exit_code",
    "render_json",
    "render_text",
]
