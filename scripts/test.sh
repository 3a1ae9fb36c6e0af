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

run_pytest() {
    local status=0
    python -m pytest "$@" || status=$?
    if [ "$status" -eq 5 ]; then
        echo "pytest collected no tests: failing on purpose" >&2
        return 1
    fi
    return "$status"
}

echo "== the whole suite: elasticsearch-py $(python -c 'import elasticsearch; print(elasticsearch.__versionstr__)')"
run_pytest "$@"
echo "== the integration suite again, through a proxy answering like a basic-licence Elasticsearch 8.19"
ES_SEMANTIC_TEST_EMULATE=basic-8.19 run_pytest tests/integration "$@"
# The other client major, laid over the same environment (PYTHONPATH comes before site-packages).
python -m pip install -q --upgrade --target .es9 --no-deps \
    "elasticsearch>=9,<10" "elastic-transport>=9.4.1,<10" "sniffio>=1.3"
echo "== the whole suite: elasticsearch-py $(PYTHONPATH=.es9 python -c 'import elasticsearch; print(elasticsearch.__versionstr__)')"
PYTHONPATH=.es9 run_pytest "$@"
