#!/usr/bin/env bash
# The whole test suite on the production parts: PostgreSQL, Redis and S3 (moto
# server over HTTP). Extra arguments go to pytest, e.g. `tests/hub -k download`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/scripts/bootstrap.sh
bash infra/scripts/services-up.sh

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/mergeworks}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/15}"
export S3_ENDPOINT_URL="${S3_ENDPOINT_URL:-http://127.0.0.1:${MOTO_PORT:-5055}}"
export S3_BUCKET="${S3_BUCKET:-mergeworks-test}"
export S3_ACCESS_KEY_ID="${S3_ACCESS_KEY_ID:-testing}"
export S3_SECRET_ACCESS_KEY="${S3_SECRET_ACCESS_KEY:-testing}"
export MERGEWORKS_DATA_DIR="${MERGEWORKS_DATA_DIR:-$PWD/var/test}"
export PYTHONDONTWRITEBYTECODE=1
# Live-server threads kept alive by HTTP keep-alive would otherwise hold their
# database connections past the end of the run, and the test database could not be dropped.
export DB_CONN_MAX_AGE="${DB_CONN_MAX_AGE:-0}"

set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when a selection matched no tests; a targeted run is not a failure.
if [ "$rc" -eq 5 ] && [ "$#" -gt 0 ]; then exit 0; fi
exit "$rc"
