#!/usr/bin/env bash
# Install everything and run the whole check: ruff, mypy --strict, unit and integration tests.
#
# The integration suite runs three times against ONE server: ES_URL's cluster when set, else a
# local noida-db started here for all three runs. Every run fails if it leaves an index, alias,
# template or pipeline behind (tests/integration/conftest.py), so the second and third runs
# also check that the first left the server as it found it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh async,local,models,test
# shellcheck disable=SC1091
[ -n "${VIRTUAL_ENV:-}" ] || . .venv/bin/activate
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ruff check es_semantic tests benchmarks
ruff format --check es_semantic tests benchmarks
mypy
# The documentation site: broken links, references or generated pages fail the run.
docs_dir=$(mktemp -d -t es-semantic-docs-XXXXXX)
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$docs_dir/site"
rm -rf "$docs_dir"

# Set for every run: values that break any test still reading the shell's environment (the
# tests must see the packaged defaults: tests/conftest.py takes these out for the session).
HOSTILE=(
    ES_SEMANTIC_MODEL=/nonexistent/es-semantic-model
    ES_SEMANTIC_BACKEND=no-such-backend
    ES_SEMANTIC_DEVICE=no-such-device
    ES_SEMANTIC_CONFIG=/nonexistent/es-semantic.toml
    ES_SEMANTIC_CACHE_DIR=/dev/null/es-semantic-cache
)

run_pytest() {
    local status=0
    env "${HOSTILE[@]}" python -m pytest "$@" || status=$?
    if [ "$status" -eq 5 ]; then
        echo "pytest collected no tests: failing on purpose" >&2
        return 1
    fi
    return "$status"
}

server_pid=""
server_dir=""
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    [ -z "$server_dir" ] || rm -rf "$server_dir"
}

if [ -z "${ES_URL:-}${ES_CLOUD_ID:-}" ]; then
    server_dir=$(mktemp -d -t es-semantic-test-XXXXXX)
    trap stop_server EXIT
    python -m tests.integration.local_cluster "$server_dir/server" &
    server_pid=$!
    for _ in $(seq 900); do
        [ -s "$server_dir/server" ] && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ ! -s "$server_dir/server" ]; then
        echo "the local noida-db for the integration runs did not start" >&2
        exit 1
    fi
    read -r url pid <"$server_dir/server"
    export ES_URL="$url" ES_SEMANTIC_TEST_SERVER_PID="$pid"
    echo "== one local noida-db (pid $pid) at $url for every integration run"
fi

echo "== the whole suite: elasticsearch-py $(python -c 'import elasticsearch; print(elasticsearch.__versionstr__)')"
run_pytest "$@"
echo "== the integration suite again, same server, through a proxy answering like a basic-licence Elasticsearch 8.19"
ES_SEMANTIC_TEST_EMULATE=basic-8.19 run_pytest tests/integration "$@"
# The other client major, laid over the same environment (PYTHONPATH comes before site-packages).
python -m pip install -q --upgrade --target .es9 --no-deps \
    "elasticsearch>=9,<10" "elastic-transport>=9.4.1,<10" "sniffio>=1.3"
echo "== the whole suite: elasticsearch-py $(PYTHONPATH=.es9 python -c 'import elasticsearch; print(elasticsearch.__versionstr__)'), same server, through a proxy answering like a basic-licence Elasticsearch 9.1"
PYTHONPATH=.es9 ES_SEMANTIC_TEST_EMULATE=9.x run_pytest "$@"
