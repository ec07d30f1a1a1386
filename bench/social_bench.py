"""Community performance check (issue 14). Not a test: it prints figures and ratios.

    .venv/bin/python bench/social_bench.py [--rounds 15] [--followers 100000] [--notifications 10000]

Runs on PostgreSQL and Redis (SOCIAL_BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/mw_social_bench, created and migrated if
missing; REDIS_URL, default redis://127.0.0.1:6379/1) with a real Celery worker.

1. Publish: a creator with 100,000 followers and one with none each publish
   versions, alternately (same machine load on both sides); the time of
   `model_version_publish` including its commit and the enqueue after commit.
   Target: followed / unfollowed median <= 1.5.
2. Fan-out: a real worker (queue `default`) turns one publish into 100,000
   notifications; wall time from the publish's commit until the last row is
   visible. Target <= 60 s.
3. Unread count: GET /api/v1/notifications/unread-count for a user with 10,000
   unread notifications against GET /api/v1/health/live (liveness), alternately, in process
   through Django's test Client with an API key. Target ratio <= 2.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ["DATABASE_URL"] = os.environ.get("SOCIAL_BENCH_DATABASE_URL",
                                            "postgres://postgres@127.0.0.1:5432/mw_social_bench")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")
os.environ.setdefault("MERGEWORKS_DATA_DIR", str(ROOT / "var" / "social-bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
# Local-disk blobs: the bench measures the community layer, not S3.
for name in ("S3_BUCKET", "S3_ENDPOINT_URL"):
    os.environ.pop(name, None)


def ensure_database(url: str) -> None:
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    admin = psycopg.connect(host=cfg["HOST"] or "127.0.0.1", port=cfg["PORT"] or 5432, user=cfg["USER"] or "postgres",
                            password=cfg["PASSWORD"] or None, dbname="postgres", autocommit=True)
    if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (cfg["NAME"],)).fetchone():
        admin.execute(f'CREATE DATABASE "{cfg["NAME"]}"')
    admin.close()


def setup_django():
    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(followers: int, notifications: int):
    from django.db import transaction

    from hub.accounts.models import ApiKey, User
    from hub.accounts.services import api_key_create
    from hub.catalog.services import model_create
    from hub.community.models import Follow, Notification

    big = User.objects.filter(username="bench-famous").first()
    if big is None:
        print(f"seeding {followers:,} followers and {notifications:,} notifications …", flush=True)
        with transaction.atomic():
            big = User.objects.create_user(username="bench-famous", password="x" * 12)
            User.objects.create_user(username="bench-unknown", password="x" * 12)
            reader = User.objects.create_user(username="bench-reader", password="x" * 12)
            for start in range(0, followers, 10_000):
                users = User.objects.bulk_create(
                    [User(username=f"bench-fan-{i}", password="!") for i in range(start, min(start + 10_000, followers))]
                )
                Follow.objects.bulk_create([Follow(follower=u, creator=big) for u in users])
            Notification.objects.bulk_create(
                [Notification(user=reader, kind="comment", text=f"comment {i}") for i in range(notifications)],
                batch_size=5000,
            )
        model_create(owner=big, name="Famous model")
        model_create(owner=User.objects.get(username="bench-unknown"), name="Unknown model")
    reader = User.objects.get(username="bench-reader")
    ApiKey.objects.filter(user=reader).delete()
    key = api_key_create(user=reader, name="bench", scopes=["read"]).plaintext
    return key


_counter = [0]


def draft_version(username: str):
    from hub.catalog.models import Model
    from hub.catalog.services import model_version_create
    from hub.files.services import blob_ingest_stream, model_file_create
    from tests.support.builders import tiny_safetensors_bytes

    model = Model.objects.get(owner__username=username)
    _counter[0] += 1
    name = f"b{time.time_ns()}-{_counter[0]}"
    version = model_version_create(model=model, name=name)
    data = tiny_safetensors_bytes(_counter[0] % 50)
    blob = blob_ingest_stream(reader=io.BytesIO(data), size=len(data), head=data[:16], header_reader=io.BytesIO(data))
    model_file_create(version=version, blob=blob, name=f"{name}.safetensors")
    return version


def publish_timed(version) -> float:
    from django.db import transaction

    from hub.catalog.services import model_version_publish

    start = time.perf_counter()
    with transaction.atomic():  # the on_commit enqueue runs inside the timing
        model_version_publish(version=version)
    return time.perf_counter() - start


def start_worker(log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "default", "-c", "1", "--pool", "solo",
         "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"social-bench-{os.getpid()}@%h"],
        cwd=ROOT, env={**os.environ, "DB_CONN_MAX_AGE": "0"}, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--followers", type=int, default=100_000)
    parser.add_argument("--notifications", type=int, default=10_000)
    args = parser.parse_args()
    setup_django()
    from workers.celery import app

    key = seed(args.followers, args.notifications)
    from hub.community.models import Follow, Notification

    followers = Follow.objects.filter(creator__username="bench-famous").count()
    print(f"creator followers: {followers:,}")

    # 1. publish, alternating, with no worker consuming (messages wait in Redis).
    app.control.purge()
    famous, unknown = [], []
    for _ in range(args.rounds):
        famous.append(publish_timed(draft_version("bench-famous")))
        unknown.append(publish_timed(draft_version("bench-unknown")))
    app.control.purge()
    f_ms, u_ms = statistics.median(famous) * 1000, statistics.median(unknown) * 1000
    print(f"publish median: {f_ms:.2f} ms with {followers:,} followers, {u_ms:.2f} ms with none; "
          f"ratio {f_ms / u_ms:.2f} (target <= 1.5)")

    # 2. fan-out on a real worker.
    log = ROOT / "var" / "social-bench-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    worker = start_worker(log)
    try:
        version = draft_version("bench-famous")
        publish_timed(version)
        start = time.perf_counter()
        deadline = start + 300
        while Notification.objects.filter(version=version).count() < followers:
            if time.perf_counter() > deadline:
                raise SystemExit("fan-out did not finish in 300 s")
            time.sleep(0.25)
        fan_out = time.perf_counter() - start
        print(f"fan-out: {followers:,} notifications in {fan_out:.1f} s on a real worker (target <= 60 s)")
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)

    # 3. unread count vs health, alternating.
    from django.test import Client

    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    body = client.get("/api/v1/notifications/unread-count", **auth).json()
    print(f"unread-count answer for the reader: {body}")
    for _ in range(50):  # warm both paths (prepared statements, imports)
        client.get("/api/v1/health/live")
        client.get("/api/v1/notifications/unread-count", **auth)
    health, unread = [], []
    for _ in range(400):
        t = time.perf_counter()
        client.get("/api/v1/health/live")
        health.append(time.perf_counter() - t)
        t = time.perf_counter()
        r = client.get("/api/v1/notifications/unread-count", **auth)
        unread.append(time.perf_counter() - t)
        assert r.status_code == 200
    h_ms, n_ms = statistics.median(health) * 1000, statistics.median(unread) * 1000
    print(f"unread-count median {n_ms:.2f} ms vs /api/v1/health/live {h_ms:.2f} ms; ratio {n_ms / h_ms:.2f} (target <= 2)")
    ok = f_ms / u_ms <= 1.5 and fan_out <= 60 and n_ms / h_ms <= 2
    print("all targets met" if ok else "SOME TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
