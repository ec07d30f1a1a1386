#!/usr/bin/env bash
# Start the local services the test suite talks to, if they are not already up:
# PostgreSQL and Redis from Debian's packages, and moto's standalone S3 server
# (there is no MinIO binary to install here; code under test speaks plain S3).
set -euo pipefail
cd "$(dirname "$0")/../.."

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  for _ in $(seq 30); do pg_up && break; sleep 1; done
  pg_up || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
fi

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }
if ! redis_up; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 30); do redis_up && break; sleep 0.5; done
  redis_up || { echo "Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }
fi

S3_PORT="${MOTO_PORT:-5055}"
s3_up() { curl -fsS -o /dev/null "http://127.0.0.1:${S3_PORT}/moto-api/" 2>/dev/null; }
if ! s3_up; then
  mkdir -p var/log
  nohup setsid .venv/bin/moto_server -H 127.0.0.1 -p "${S3_PORT}" >var/log/moto.log 2>&1 &
  for _ in $(seq 60); do s3_up && break; sleep 0.5; done
  s3_up || { echo "moto S3 server did not start on port ${S3_PORT}; see var/log/moto.log" >&2; exit 1; }
fi
