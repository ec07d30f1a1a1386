"""Shared by the benchmarks and drills that run the hub's real processes: the
environment of their own database, bucket and Redis db, the schema, and live
gunicorn and Celery worker processes."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_environ(*, database: str, bucket: str, redis_db: int, data_dir: str, **extra: str) -> None:
    """Default the services to a bench's own database, bucket and Redis db, so a run never touches the dev data.

    Only defaults: whatever the caller's environment already names wins.
    """
    os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{database}")
    os.environ.setdefault("S3_BUCKET", bucket)
    os.environ.setdefault("S3_ENDPOINT_URL", "http://127.0.0.1:5055")
    os.environ.setdefault("S3_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("S3_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("REDIS_URL", f"redis://127.0.0.1:6379/{redis_db}")
    os.environ.setdefault("MERGEWORKS_DATA_DIR", str(ROOT / "var" / data_dir))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
    for name, value in extra.items():
        os.environ.setdefault(name, value)


def embedded_env(data_dir: Path) -> dict:
    """This process's environment without the services: a child hub on SQLite and local disk under `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "DATABASE_URL", "REDIS_URL"))}
    env.update(DJANGO_SETTINGS_MODULE="hub.settings", MERGEWORKS_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT))
    return env


@contextmanager
def scratch_dir(prefix: str, *, keep: bool = False, dir: str | None = None) -> Iterator[Path]:
    """A temporary folder for a run's big files and embedded hub, removed at the end unless `keep`."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=dir))
    try:
        yield path
    finally:
        if keep:
            print(f"\nkept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database of `url` if it is missing."""
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    admin = psycopg.connect(
        host=cfg["HOST"] or "127.0.0.1", port=cfg["PORT"] or 5432, user=cfg["USER"] or "postgres",
        password=cfg["PASSWORD"] or None, dbname="postgres", autocommit=True,
    )
    with admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone():
            admin.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


def django_ready() -> None:
    """DATABASE_URL's database created if missing, Django set up and the schema migrated."""
    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def ensure_bucket() -> None:
    from hub.files.storage import blob_storage

    storage = blob_storage()
    if hasattr(storage, "ensure_bucket"):
        storage.ensure_bucket()


def drill_user():
    """The one account the drills publish their inputs under, the same in every run and every drill script.

    Every run publishes the same tiny checkpoints, and the hub refuses another creator's publish of bytes
    that are already published (a re-upload that credits nobody); the same owner may publish them again.
    """
    from hub.accounts.models import User

    return User.objects.filter(username="drills").first() or User.objects.create_user(username="drills",
                                                                                       password=None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(port: int, timeout: float = 60, path: str = "/api/v1/health") -> None:
    """Poll `path` until it answers 200; stop the benchmark if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                probe.request("GET", path)
                if probe.getresponse().status == 200:
                    return
            finally:
                probe.close()
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"gunicorn on {port} did not start")


def start_gunicorn(port: int, *options: str, app: str = "hub.wsgi:application", env: dict | None = None,
                   **popen: object) -> subprocess.Popen:
    """gunicorn serving `app` on 127.0.0.1:`port` in its own process group (so `stop` ends its workers too).

    The default environment is this process's, with connections kept open across requests as in production.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "-b", f"127.0.0.1:{port}", *options],
        cwd=ROOT, env=env if env is not None else {**os.environ, "DB_CONN_MAX_AGE": "600"},
        start_new_session=True, **popen,
    )


def start_worker(log: Path, node: str, *, env: dict | None = None, append: bool = False, timeout: float = 120,
                 failure: type[BaseException] = SystemExit) -> subprocess.Popen:
    """A real Celery worker (prefork, one child, every queue) in its own process group, once it says it is ready.

    `env` is added to this process's environment; its output goes to `log`. A worker that exits or is not
    ready within `timeout` raises `failure`.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "default,ingest,gpu", "-c", "1",
         "--pool", "prefork", "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-n", f"{node}@%h"],
        cwd=ROOT, env={**os.environ, **(env or {})}, stdout=open(log, "ab" if append else "wb"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise failure(f"worker exited:\n{log.read_text()[-3000:]}")
        if "ready." in log.read_text(errors="replace"):
            return proc
        time.sleep(0.2)
    raise failure(f"worker not ready after {timeout:.0f} s")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """End a process started in its own group, children included; SIGKILL if `sig` is not enough in time."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


class LiveServer:
    """gunicorn (one gthread worker, one thread, keep-alive) on a free port, with one keep-alive connection."""

    def __init__(self, timeout: float = 30):
        self.port = free_port()
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None

    def __enter__(self):
        self.proc = start_gunicorn(self.port, "--worker-class", "gthread", "--workers", "1", "--threads", "1",
                                   "--keep-alive", "30", "--log-level", "warning")
        wait_until_healthy(self.port)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        return self

    def __exit__(self, *exc) -> None:
        self.conn.close()
        stop(self.proc)
