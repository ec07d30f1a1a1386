#!/usr/bin/env bash
# Set up and start the hub in embedded mode: SQLite, local-disk storage and a
# Celery worker over kombu's filesystem transport. No server to install.
# Set DATABASE_URL / REDIS_URL / S3_* first to run on the production parts instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/scripts/bootstrap.sh
PY=.venv/bin/python
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
mkdir -p var/log

$PY manage.py migrate --noinput
# Weightless base-model configs for preview renders, written offline (kept when up to date).
$PY manage.py hub_base_configs
# Seeds the demo and queues its first preview grids, which the worker below renders.
$PY manage.py hub_seed_demo

# One worker serves every queue here; production runs one pool per queue (infra/).
$PY -m celery -A workers worker -Q default,ingest,gpu -c 2 -l info >var/log/worker.log 2>&1 &
WORKER=$!
# Beat is its own process (a killed worker takes no beat with it, and none is
# left behind); its single-instance lock makes a second beat stand by.
$PY -m celery -A workers beat -l info \
  --schedule "${MERGEWORKS_DATA_DIR:-var}/celerybeat-schedule" >var/log/beat.log 2>&1 &
BEAT=$!
trap 'kill $WORKER $BEAT 2>/dev/null; wait $WORKER $BEAT 2>/dev/null' EXIT INT TERM

echo "Mergeworks is starting on http://${HOST}:${PORT}/  (logs: var/log/worker.log, var/log/beat.log)"
$PY -m gunicorn hub.wsgi:application --bind "${HOST}:${PORT}" --workers 2 --threads 4 --timeout 120 \
  --access-logfile -
