"""An index's sparse model found again from its contract (#28): the folder the leg recorded,
the same folder inside the installed package it came from, or its hub id from the local cache
(never the network: a contract is anyone's who may write the index's mapping). The folder's
fingerprint is checked before any weights load; loaded models are shared by every searcher of
the process (the service's too), at most :data:`MAX_MODELS` of them, memoised on what the leg
says (fingerprint included) so a query reads no folder once its model is loaded."""

from __future__ import annotations

import logging
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
# (model_path, model_package, model_name, fingerprint, query_mode, device) -> the loaded model
Key = tuple[str | None, str | None, str, str, str, str | None]
_loaded: OrderedDict[Key, SparseEncoder] = OrderedDict()
_loading: dict[Key, threading.Lock] = {}  # one load per key; other keys' hits do not wait
_lock = threading.Lock()
logger = logging.getLogger("es_semantic.sparse_models")


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
    loading them; a hub id from the local cache only); a one-line ConfigError naming
    ``--sparse-model`` when there is none. The message names the index and the recorded
    model only (a service answers with it): what each folder holds goes to the log."""
    from es_semantic.encoding.sparse import describe_sparse

    for source in candidates(leg):
        try:
            spec = describe_sparse(source, query_mode=leg.query_mode, local_only=True)
        except (EsSemanticError, OSError, ValueError) as exc:
            logger.info("index %s: sparse model not read from %s (%s)", index, source,
                        type(exc).__name__)  # fmt: skip
            continue  # unreadable there (or a hub id that is not cached): try the next
        if spec.fingerprint == leg.model_fingerprint:
            return spec.folder or source
        logger.info("index %s: %s holds sparse model %s, not the index's %s", index, source,
                    spec.fingerprint, leg.model_fingerprint)  # fmt: skip
    raise ConfigError(
        f"index {index!r} has a sparse leg built with {leg.model_name} "
        f"({leg.model_fingerprint}), which is not found on this machine: pass --sparse-model "
        "with that model's folder (Python: sparse_encoder=SparseEncoder(...))"
    )


def leg_key(leg: SparseLeg, device: str | None = None) -> Key:
    """What a loaded model is memoised on: where the leg says it is, and what it is."""
    return (leg.model_path, leg.model_package, leg.model_name, leg.model_fingerprint,
            leg.query_mode, device)  # fmt: skip


def loaded(leg: SparseLeg, device: str | None = None) -> SparseEncoder | None:
    """The leg's model when it is loaded already (no folder read), else None."""
    key = leg_key(leg, device)
    with _lock:
        encoder = _loaded.get(key)
        if encoder is not None:
            _loaded.move_to_end(key)
        return encoder


def for_leg(leg: SparseLeg, index: str, *, device: str | None = None) -> SparseEncoder:
    """The leg's model on ``device``, found and loaded once (outside the shared lock: a load
    of seconds holds up only the queries waiting for that model)."""
    from es_semantic.encoding.sparse import SparseEncoder

    key = leg_key(leg, device)
    encoder = loaded(leg, device)
    if encoder is not None:
        return encoder
    with _lock:
        key_lock = _loading.setdefault(key, threading.Lock())
    with key_lock:
        encoder = loaded(leg, device)  # loaded by the query this one waited for
        if encoder is not None:
            return encoder
        try:
            encoder = SparseEncoder(locate(leg, index), device=device, query_mode=leg.query_mode)
            with _lock:  # in the cache before the key's lock goes: no second load of it
                _loaded[key] = encoder
                while len(_loaded) > MAX_MODELS:
                    _loaded.popitem(last=False)
        finally:
            with _lock:
                _loading.pop(key, None)
    return encoder


def for_searcher(leg: SparseLeg, index: str, dense: object, allowed: bool) -> SparseEncoder:
    """The model a searcher given no sparse encoder runs the leg with, on the device of its
    dense encoder (``--device``); refused where contracts may not name it (``allowed``: the
    service's indices named with ``serve --index``)."""
    if not allowed:
        raise ConfigError(
            f"index {index!r} has a sparse leg: start the service with --sparse-model (or name "
            "the index with serve --index to use the model its contract records)"
        )
    device = getattr(dense, "device", None)
    return for_leg(leg, index, device=str(device) if device is not None else None)
