#!/usr/bin/env bash
# Install everything and run the whole check: ruff, mypy --strict, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh async,local,models,test
# shellcheck disable=SC1091
[ -n "${VIRTUAL_ENV:-}" ] || . .venv/bin/activate
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ruff check es_semantic tests benchmarks
ruff format --check es_semantic tests benchmarks
mypy
status=0
python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: failing on purpose" >&2
    exit 1
fi
exit "$status"
