"""Fault drills on the production parts (issue 19). Not a test: it prints each drill's result against its goal.

    .venv/bin/python bench/fault_drills.py [--only NAME ...] [--list]

Runs PostgreSQL, Redis and S3 (moto or any S3 server) for real, a live
gunicorn (2 workers x 4 threads) and a Celery worker, and breaks one part at
a time with a TCP proxy put between the web process and that part
(`tests/support/faults.py`): "refused" closes the port, "hung" keeps
accepting and passes nothing on, on new and established connections alike.
The worker talks to the parts directly, so a drill measures what the web
process does while its link to a part is broken.

Its own database (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/mw_faults;
created and migrated if missing), Redis db 15 and S3 bucket `mergeworks-faults`.

Drills (each returns rows of (name, measured, goal, ok)):
- broker refused / broker hung: a run answers JSON 503 in <= 5 s, leaves no
  job that looks queued, and goes through once the broker is back;
- database refused / database hung (a silent listener from the start, and
  a proxy gone silent under established connections): health answers in
  <= 5 s and names the database; API routes answer JSON 503;
- S3 outage during an upload (completing it answers JSON 503 in <= 5 s; it
  completes and ingests once S3 is back) and during a download (the hub
  still answers at once, with a redirect or JSON, and health names storage).

Other drill modules plug in through OPTIONAL_MODULES (today `bench/drills_jobs.py`:
kill -9 of a running merge, kill -9 while storing): each exposes `DRILLS`, a list
of self-contained functions taking nothing and returning one row. They run last,
in this database, with the shared worker stopped (each starts its own).
"""
from __future__ import annotations

import argparse
import http.client
import importlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._live import bench_environ, django_ready, drill_user, ensure_bucket, free_port, start_gunicorn  # noqa: E402
from bench._live import start_worker, stop, wait_until_healthy  # noqa: E402

bench_environ(database="mw_faults", bucket="mergeworks-faults", redis_db=15, data_dir="bench-faults",
              MERGE_PREVIEWS="false")

# Modules with more drills (e.g. kill -9 of merges), loaded when present.
OPTIONAL_MODULES = ("bench.drills_jobs",)
ANSWER_GOAL_S = 5.0

Row = tuple[str, str, str, bool]


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]
    seconds: float

    @property
    def json(self):
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    @property
    def is_json(self) -> bool:
        return self.headers.get("content-type", "").startswith("application/json")

    def describe(self) -> str:
        code = (self.json or {}).get("code") if isinstance(self.json, dict) else None
        kind = "JSON" if self.is_json else self.headers.get("content-type", "?")
        return f"{self.seconds:.2f}s, {self.status} {kind}{' ' + code if code else ''}"


class Server:
    """A live gunicorn, 2 workers x 4 threads as in production, with extra environment."""

    def __init__(self, log_dir: Path, **env: str):
        self.port = free_port()
        self.env = {**os.environ, "DB_CONN_MAX_AGE": "60", **env}
        self.log = open(log_dir / f"gunicorn-{self.port}.log", "wb")
        self.proc = start_gunicorn(self.port, "--worker-class", "gthread", "--workers", "2", "--threads", "4",
                                   "--timeout", "120", env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        # Liveness, not readiness: most drills start a server with one part already broken.
        wait_until_healthy(self.port, path="/api/v1/health/live")
        for _ in range(4):  # warm every worker thread's imports before anything is timed
            self.request("GET", "/api/v1/health")

    def request(self, method: str, path: str, body=None, token: str | None = None, timeout: float = 120) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            return Answer(response.status, data, {k.lower(): v for k, v in response.getheaders()},
                          time.monotonic() - started)
        finally:
            conn.close()

    def close(self) -> None:
        stop(self.proc, signal.SIGKILL)
        self.log.close()


@dataclass
class Drills:
    """What a drill gets: the user, an API key with every scope, a worker, and helpers."""

    log_dir: Path
    user: object
    token: str
    recipe: object
    input_versions: dict
    worker: subprocess.Popen | None = None
    servers: list[Server] = field(default_factory=list)

    def server(self, **env: str) -> Server:
        server = Server(self.log_dir, **env)
        self.servers.append(server)
        return server

    def fresh_version(self):
        """A new version of the drill recipe whose merge key no run has made yet."""
        from merges.registry.documents import document_text
        from merges.registry.services import recipe_version_create
        from tests.registry.conftest import sd1_document

        document = sd1_document(self.input_versions["base"].pk, self.input_versions["anime"].pk)
        document["seed"] = time.time_ns() % 10**12
        version, _ = recipe_version_create(recipe=self.recipe, author=self.user, source=document_text(document))
        return version

    def wait_job(self, job_id: int, timeout: float = 300) -> tuple[str, float]:
        from merges.registry.models import MergeJob

        started = time.monotonic()
        while time.monotonic() - started < timeout:
            status = MergeJob.objects.filter(pk=job_id).values_list("status", flat=True).first()
            if status in ("succeeded", "failed", "cancelled"):
                return status, time.monotonic() - started
            time.sleep(0.25)
        return "timeout", time.monotonic() - started

    def stop_worker(self) -> None:
        if self.worker is not None:
            stop(self.worker, timeout=60)
            self.worker = None

    def close(self) -> None:
        for server in self.servers:
            server.close()
        self.stop_worker()


def _proxy_for(url: str, default_port: int):
    from tests.support.faults import FaultProxy

    parsed = urlparse(url)
    return FaultProxy(parsed.hostname or "127.0.0.1", parsed.port or default_port), parsed


def _fast_json_503(answer: Answer) -> bool:
    return answer.seconds <= ANSWER_GOAL_S and answer.status == 503 and answer.is_json


# --- broker ------------------------------------------------------------------------------------

def _broker_drill(ctx: Drills, fault: str) -> list[Row]:
    from merges.registry.models import MergeJob

    proxy, parsed = _proxy_for(os.environ["REDIS_URL"], 6379)
    server = ctx.server(REDIS_URL=f"redis://127.0.0.1:{proxy.port}{parsed.path or '/0'}")
    rows: list[Row] = []
    try:
        version = ctx.fresh_version()
        run_path = f"/api/v1/recipes/{ctx.recipe.pk}/run"
        getattr(proxy, fault)()
        answer = server.request("POST", run_path, {"version": version.number}, token=ctx.token)
        rows.append((f"broker {fault}: run answer", answer.describe(), "<= 5 s, JSON 503", _fast_json_503(answer)))
        time.sleep(1)
        phantom = MergeJob.objects.filter(recipe_version=version, status="queued").count()
        rows.append((f"broker {fault}: jobs left looking queued", str(phantom), "0", phantom == 0))
        proxy.forward()
        back = server.request("POST", run_path, {"version": version.number}, token=ctx.token)
        job = (back.json or {}).get("job") or {}
        status, seconds = ctx.wait_job(job["id"]) if job.get("id") else ("no job", 0.0)
        rows.append((f"broker {fault}: run once the broker is back", f"{back.status}, job {status} in {seconds:.1f}s",
                     "202, then succeeded", back.status == 202 and status == "succeeded"))
    finally:
        proxy.close()
    return rows


def drill_broker_refused(ctx: Drills) -> list[Row]:
    return _broker_drill(ctx, "refuse")


def drill_broker_hung(ctx: Drills) -> list[Row]:
    return _broker_drill(ctx, "hang")


# --- database ----------------------------------------------------------------------------------

def _db_rows(label: str, server: Server) -> list[Row]:
    health = server.request("GET", "/api/v1/health")
    down = (health.json or {}).get("down", []) if isinstance(health.json, dict) else []
    rows = [(f"{label}: health", f"{health.describe()}, down={down}", "<= 5 s, 503 naming database",
             health.seconds <= ANSWER_GOAL_S and health.status == 503 and "database" in down)]
    for path in ("/api/v1/models?limit=20", "/api/download/models/1"):
        answer = server.request("GET", path)
        if path.startswith("/api/v1/models") and answer.status == 200:
            # The anonymous list page was cached (in Redis) before the outage: serving it is
            # the better answer, and no write can happen meanwhile to make it stale.
            rows.append((f"{label}: GET {path}", answer.describe(), "<= 5 s, cached page or JSON 503",
                         answer.seconds <= ANSWER_GOAL_S))
            continue
        rows.append((f"{label}: GET {path}", answer.describe(), "<= 5 s, JSON 503", _fast_json_503(answer)))
    live = server.request("GET", "/api/v1/health/live")
    rows.append((f"{label}: liveness", f"{live.describe()}", "200 at once", live.status == 200 and live.seconds < 1))
    return rows


def drill_database_refused(ctx: Drills) -> list[Row]:
    proxy, parsed = _proxy_for(os.environ["DATABASE_URL"], 5432)
    url = os.environ["DATABASE_URL"].replace(parsed.netloc, f"{parsed.username or 'postgres'}@127.0.0.1:{proxy.port}")
    server = ctx.server(DATABASE_URL=url)
    try:
        server.request("GET", "/api/v1/models?limit=20")  # connections established before the outage
        proxy.refuse()
        return _db_rows("database refused", server)
    finally:
        proxy.close()


def drill_database_hung(ctx: Drills) -> list[Row]:
    from tests.support.faults import HungListener

    parsed = urlparse(os.environ["DATABASE_URL"])
    rows: list[Row] = []
    with HungListener() as silent:
        url = os.environ["DATABASE_URL"].replace(parsed.netloc, f"{parsed.username or 'postgres'}@127.0.0.1:{silent.port}")
        rows += _db_rows("database silent from the start", ctx.server(DATABASE_URL=url))
    proxy, _ = _proxy_for(os.environ["DATABASE_URL"], 5432)
    url = os.environ["DATABASE_URL"].replace(parsed.netloc, f"{parsed.username or 'postgres'}@127.0.0.1:{proxy.port}")
    server = ctx.server(DATABASE_URL=url)
    try:
        for _ in range(8):  # every thread holds an established connection
            server.request("GET", "/api/v1/health")
        proxy.hang()
        health = server.request("GET", "/api/v1/health")
        down = (health.json or {}).get("down", []) if isinstance(health.json, dict) else []
        rows.append(("database gone silent under open connections: health", f"{health.describe()}, down={down}",
                     "<= 5 s, 503 naming database",
                     health.seconds <= ANSWER_GOAL_S and health.status == 503 and "database" in down))
    finally:
        proxy.close()
    return rows


# --- storage -----------------------------------------------------------------------------------

def _put(url: str, data: bytes, timeout: float) -> int:
    """PUT bytes to a presigned part URL as an upload client does (no Content-Type)."""
    from urllib.parse import urlsplit

    target = urlsplit(url)
    conn = http.client.HTTPConnection(target.netloc, timeout=timeout)
    try:
        conn.request("PUT", f"{target.path}?{target.query}", body=data, headers={"Content-Length": str(len(data))})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _s3_behind_proxy(ctx: Drills):
    """A proxy in front of S3 and a server that reaches S3 (and hands out presigned URLs) through it."""
    proxy, _ = _proxy_for(os.environ["S3_ENDPOINT_URL"], 80)
    endpoint = f"http://127.0.0.1:{proxy.port}"
    return proxy, ctx.server(S3_ENDPOINT_URL=endpoint, S3_PUBLIC_ENDPOINT_URL=endpoint)


def drill_s3_during_upload(ctx: Drills) -> list[Row]:
    import hashlib

    from tests.support.builders import tiny_safetensors_bytes

    proxy, server = _s3_behind_proxy(ctx)
    rows: list[Row] = []
    try:
        data = tiny_safetensors_bytes(int(time.time()) % 1000)
        sha = hashlib.sha256(data).hexdigest()
        created = server.request("POST", "/api/v1/uploads", {"filename": "drill.safetensors", "size": len(data),
                                                              "sha256": sha}, token=ctx.token)
        upload = created.json
        part = upload["parts"][0]
        proxy.refuse()
        try:
            failed_put = _put(part["url"], data, timeout=5) >= 400
        except OSError:
            failed_put = True
        complete = server.request("POST", f"/api/v1/uploads/{upload['id']}/complete", {}, token=ctx.token)
        rows.append(("S3 down during upload: complete", complete.describe(), "<= 5 s, JSON 503 (or 4xx: parts missing)",
                     complete.seconds <= ANSWER_GOAL_S and complete.is_json and complete.status in (503, 400, 409)))
        status = server.request("GET", f"/api/v1/uploads/{upload['id']}", token=ctx.token)
        rows.append(("S3 down during upload: status", status.describe(), "<= 5 s, JSON",
                     status.seconds <= ANSWER_GOAL_S and status.is_json))
        proxy.forward()
        fresh = server.request("GET", f"/api/v1/uploads/{upload['id']}", token=ctx.token).json
        url = next(p["url"] for p in fresh["parts"] if p["number"] == part["number"])
        stored = _put(url, data, timeout=30)
        done = server.request("POST", f"/api/v1/uploads/{upload['id']}/complete", {}, token=ctx.token)
        started, state = time.monotonic(), None
        while time.monotonic() - started < 120:
            state = server.request("GET", f"/api/v1/uploads/{upload['id']}", token=ctx.token).json.get("status")
            if state in ("ready", "failed", "quarantined"):
                break
            time.sleep(0.5)
        rows.append(("S3 back: the same upload completes",
                     f"part PUT failed while down={failed_put}, then PUT {stored}, complete {done.status}, {state}",
                     "ready", failed_put and stored == 200 and done.status in (200, 202) and state == "ready"))
    finally:
        proxy.close()
    return rows


def drill_s3_during_download(ctx: Drills) -> list[Row]:
    from tests.support.builders import make_published_model

    proxy, server = _s3_behind_proxy(ctx)
    rows: list[Row] = []
    try:
        model = make_published_model(ctx.user, f"Drill download {time.time_ns()}")
        version = model.versions.get()
        proxy.refuse()
        answer = server.request("GET", f"/api/download/models/{version.pk}", token=ctx.token)
        location = answer.headers.get("location", "")
        fetched_error = None
        if answer.status == 302:
            try:
                import urllib.request

                urllib.request.urlopen(location, timeout=5).read()
            except OSError as exc:
                fetched_error = type(exc).__name__
        ok = answer.seconds <= ANSWER_GOAL_S and (answer.status == 302 or (answer.status == 503 and answer.is_json))
        rows.append(("S3 down during download: hub answer", f"{answer.describe()}; store fetch: {fetched_error}",
                     "<= 5 s, 302 (the client's fetch fails) or JSON 503", ok))
        health = server.request("GET", "/api/v1/health")
        time.sleep(5.5)  # past the storage probe's cached answer
        health = server.request("GET", "/api/v1/health")
        down = (health.json or {}).get("down", []) if isinstance(health.json, dict) else []
        rows.append(("S3 down: health", f"{health.describe()}, down={down}", "<= 5 s, 503 naming storage",
                     health.seconds <= ANSWER_GOAL_S and health.status == 503 and "storage" in down))
    finally:
        proxy.close()
    return rows


DRILLS: list[Callable[[Drills], list[Row]]] = [
    drill_broker_refused,
    drill_broker_hung,
    drill_database_refused,
    drill_database_hung,
    drill_s3_during_upload,
    drill_s3_during_download,
]


def all_drills() -> list[Callable[[Drills], list[Row]]]:
    drills = list(DRILLS)
    for name in OPTIONAL_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        drills += [_self_contained(drill) for drill in module.DRILLS]
    return drills


def _self_contained(drill: Callable[[], Row]) -> Callable[[Drills], list[Row]]:
    """A drill of an optional module: it sets up its own data and worker, and returns one row."""

    def run(ctx: Drills) -> list[Row]:
        # Its own worker must be the only one on the queues, or the shared one takes the job it breaks.
        ctx.stop_worker()
        return [drill()]

    run.__name__ = drill.__name__
    run.__doc__ = drill.__doc__
    return run


def setup() -> Drills:
    django_ready()
    from hub.accounts.services import api_key_create
    from merges.registry.services import recipe_create
    from tests.registry.conftest import sd1_document, tiny_checkpoint_bytes
    from tests.support.builders import make_published_model

    ensure_bucket()
    stamp = time.strftime("%Y%m%d%H%M%S")
    user = drill_user()
    versions = {
        name: make_published_model(user, f"Drill {name} {stamp}", data=tiny_checkpoint_bytes(seed)).versions.get()
        for name, seed in (("base", 1), ("anime", 2))
    }
    recipe = recipe_create(owner=user, title=f"Drill {stamp}",
                           source=sd1_document(versions["base"].pk, versions["anime"].pk))
    token = api_key_create(user=user, name="drills", scopes=["read", "download", "upload", "run"]).plaintext
    log_dir = Path(os.environ["MERGEWORKS_DATA_DIR"]) / "fault-drills"
    log_dir.mkdir(parents=True, exist_ok=True)
    ctx = Drills(log_dir=log_dir, user=user, token=token, recipe=recipe, input_versions=versions)
    ctx.worker = start_worker(log_dir / "worker.log", f"faults-{os.getpid()}", env={"DB_CONN_MAX_AGE": "60"})
    return ctx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="run only drills whose name contains one of these")
    parser.add_argument("--list", action="store_true", help="list the drills and exit")
    args = parser.parse_args()
    drills = all_drills()
    if args.only:
        drills = [d for d in drills if any(part in d.__name__ for part in args.only)]
    if args.list:
        print("\n".join(d.__name__ for d in drills))
        return
    ctx = setup()
    rows: list[Row] = []
    try:
        for drill in drills:
            print(f"== {drill.__name__}", flush=True)
            try:
                result = drill(ctx)
            except Exception as exc:  # a drill that breaks is a failed drill, and the others still run
                traceback.print_exc()
                result = [(drill.__name__, f"error: {type(exc).__name__}: {exc}"[:200], "completes", False)]
            finally:
                for server in ctx.servers:
                    server.close()
                ctx.servers.clear()
            for row in result:
                print(f"   {'ok  ' if row[3] else 'FAIL'} {row[0]}: {row[1]}  (goal: {row[2]})", flush=True)
            rows += result
    finally:
        ctx.close()
    failed = [r for r in rows if not r[3]]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} drill results met their goal")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
