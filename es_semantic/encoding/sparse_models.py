"""An index's sparse model found again from its contract (#28): the folder the leg recorded,
the same folder inside the installed package it came from, or its hub id. The folder's
fingerprint is checked before any weights load; loaded models are shared by every searcher of
the process (the service's too), at most :data:`MAX_MODELS` of them."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from es_semantic.encoding.model_folder import package_folder
from es_semantic.errors import ConfigError, EsSemanticError

if TYPE_CHECKING:
    from es_semantic.encoding.sparse import SparseEncoder
    from es_semantic.schema.contract import SparseLeg

MAX_MODELS = 4  # sparse models kept loaded (least recently used out)
_loaded: OrderedDict[tuple[str, str, str | None], SparseEncoder] = OrderedDict()
_lock = threading.Lock()


def candidates(leg: SparseLeg) -> list[str]:
    """Where the leg's model may be, in order: the recorded folder, the same folder in the
    installed package, the hub id (a name with a slash; a folder's name has none)."""
    found: list[str] = []
    if leg.model_path and Path(leg.model_path).is_dir():
        found.append(leg.model_path)
    in_package = package_folder(leg.model_package) if leg.model_package else None
    if in_package is not None:
        found.append(str(in_package))
    if "/" in leg.model_name and not Path(leg.model_name).is_absolute():
        found.append(leg.model_name)
    return list(dict.fromkeys(found))


def locate(leg: SparseLeg, index: str) -> str:
    """The first candidate folder whose weights are the leg's (fingerprint read without
    loading them); a one-line ConfigError naming ``--sparse-model`` when there is none."""
    from es_semantic.encoding.sparse import describe_sparse

    others: list[str] = []
    for source in candidates(leg):
        try:
            spec = describe_sparse(source, query_mode=leg.query_mode)
        except (EsSemanticError, OSError, ValueError):
            continue  # unreadable there (or a hub id that is not cached): try the next
        if spec.fingerprint == leg.model_fingerprint:
            return spec.folder or source
        others.append(f"{source} holds {spec.fingerprint}")
    recorded = leg.model_path or leg.model_package or "not recorded (an older index)"
    seen = f"; {', '.join(others)}" if others else ""
    raise ConfigError(
        f"index {index!r} has a sparse leg built with {leg.model_name} "
        f"({leg.model_fingerprint}), not found on this machine (its folder: {recorded}{seen}): "
        "pass --sparse-model with that model's folder (Python: sparse_encoder=SparseEncoder(...))"
    )


def for_leg(leg: SparseLeg, index: str, *, device: str | None = None) -> SparseEncoder:
    """The leg's model, loaded once per folder, query mode and device."""
    from es_semantic.encoding.sparse import SparseEncoder

    folder = locate(leg, index)
    key = (folder, leg.query_mode, device)
    with _lock:
        encoder = _loaded.get(key)
        if encoder is None:
            encoder = SparseEncoder(folder, device=device, query_mode=leg.query_mode)
            _loaded[key] = encoder
        _loaded.move_to_end(key)
        while len(_loaded) > MAX_MODELS:
            _loaded.popitem(last=False)
    return encoder
