"""Recipe registry performance check (issue 5, Performance). Not a test: it prints figures and ratios.

    bash infra/scripts/services-up.sh   # PostgreSQL, Redis, moto S3
    .venv/bin/python bench/registry_bench.py [--runs 7] [--hits 200]

Uses its own PostgreSQL database (DATABASE_URL, default mw_regbench; created
and migrated if missing), Redis db 6 and S3 bucket `mergeworks-regbench` on
the moto server, and starts one real Celery worker process (all queues).

- Job overhead: for each run a new recipe version (a new merge key, so a real
  merge) is run through `POST /api/v1/recipes/{id}/run`, and the wall time to
  the job's published output is measured. The engine time for the same merge
  is measured in the same run by calling `merges.engine.run_recipe` directly
  on local copies of the same inputs. Overhead = wall − engine; target:
  overhead ≤ 2 × engine time (tiny SD1 inputs, ~5.8 MB each, 968 tensors).
- Cache hits: median latency of `POST …/run` for a merge that already has an
  output (answered 200 with the output, no job) against `GET /api/v1/health/live` (liveness),
  as a client sees them: over HTTP keep-alive to a live gunicorn; target ratio
  ≤ 2. The same pair through Django's test client (no sockets, so the view's
  own CPU weighs more) is printed beside it, for comparison.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._live import LiveServer as _LiveServer  # noqa: E402
from bench._live import bench_environ, django_ready, ensure_bucket, start_worker, stop  # noqa: E402

# Merge jobs only (MERGE_PREVIEWS): a preview render queued behind each merge would share the one
# worker process with the next merge (previews have their own bench). No write limit: hundreds of
# cached runs a second by one user measure the run path, not the limiter.
bench_environ(database="mw_regbench", bucket="mergeworks-regbench", redis_db=6, data_dir="bench-reg",
              MERGE_PREVIEWS="false", WRITE_RATE_LIMIT_PER_MINUTE="0")


def tiny_checkpoint(seed: int) -> Path:
    import torch

    from merges.engine.tiny import save_single_file, tiny_sd1_components

    path = Path(os.environ["MERGEWORKS_DATA_DIR"]) / "fixtures" / f"tiny-sd1-{seed}.safetensors"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_single_file(tiny_sd1_components(seed), path, "sd1", dtype=torch.float16)
    return path


class LiveServer(_LiveServer):
    """The live gunicorn, its requests authenticated with an API key."""

    def __init__(self, token: str):
        super().__init__(timeout=60)
        self.token = token

    def request(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> tuple[int, dict]:
        import json

        headers = {"Content-Type": "application/json"} if body is not None else {}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = self.conn.getresponse()
        return response.status, json.loads(response.read() or b"null")


def median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="timed merge jobs (after one warm-up)")
    parser.add_argument("--hits", type=int, default=200, help="timed cache-hit and health requests")
    args = parser.parse_args()

    django_ready()
    from rest_framework.test import APIClient

    from hub.accounts.models import User
    from hub.accounts.services import api_key_create
    from merges.engine import run_recipe
    from merges.registry.documents import document_text
    from merges.registry.models import MergeJob, Recipe
    from merges.registry.services import recipe_create, recipe_version_create
    from tests.registry.conftest import sd1_document
    from tests.support.builders import make_published_model

    ensure_bucket()

    stamp = time.strftime("%Y%m%d%H%M%S")
    user = User.objects.create_user(username=f"bench-{stamp}", password="x")
    paths = {"base": tiny_checkpoint(1), "anime": tiny_checkpoint(2)}
    versions = {
        name: make_published_model(user, f"Bench {name} {stamp}", data=path.read_bytes()).versions.get()
        for name, path in paths.items()
    }
    sha = {name: v.files.get().sha256 for name, v in versions.items()}
    recipe: Recipe = recipe_create(
        owner=user, title=f"Bench {stamp}", source=sd1_document(versions["base"].pk, versions["anime"].pk)
    )
    token = api_key_create(user=user, name="bench", scopes=["read", "run", "upload"]).plaintext
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    log = Path(os.environ["MERGEWORKS_DATA_DIR"]) / "regbench-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    worker = start_worker(log, f"regbench-{os.getpid()}", env={"DB_CONN_MAX_AGE": "60"}, timeout=90)
    work = Path(tempfile.mkdtemp(prefix="regbench-"))
    server = LiveServer(token).__enter__()
    try:
        def timed_job(alpha: float) -> tuple[float, float, float]:
            document = sd1_document(versions["base"].pk, versions["anime"].pk, alpha=alpha)
            document["seed"] = int(stamp)  # a merge key no earlier bench run has made
            version, _ = recipe_version_create(recipe=recipe, author=user, source=document_text(document))
            t0 = time.time()
            status, body = server.request("POST", f"/api/v1/recipes/{recipe.pk}/run", {"version": version.number})
            assert status == 202, body
            job_id = body["job"]["id"]
            # Poll slowly (this box has 2 cores to share with the worker) and take the
            # end time from the job row: finished_at is written when the output is published.
            while MergeJob.objects.filter(pk=job_id).values_list("status", flat=True).get() in MergeJob.ACTIVE:
                time.sleep(0.25)
            job = MergeJob.objects.get(pk=job_id)
            wall = job.finished_at.timestamp() - t0
            assert job.status == "succeeded", job.error
            # The same merge on the same inputs, engine only, in this process.
            inputs = {name: str(p) for name, p in paths.items()}
            t1 = time.perf_counter()
            run_recipe(version.document, inputs, str(work / "out.safetensors"), input_sha256s=sha, hash_output=False)  # as the job runs it
            engine = time.perf_counter() - t1
            return wall, engine, job.engine_seconds or 0.0

        print("warm-up merge (worker imports torch, fills its input cache) …", flush=True)
        timed_job(0.11)
        rows = []
        for i in range(args.runs):
            wall, engine, in_worker = timed_job(0.2 + i * 0.05)
            rows.append((wall, engine, in_worker))
            print(f"  run {i + 1}: POST→published {wall:.2f} s, engine alone {engine:.2f} s "
                  f"(in the worker {in_worker:.2f} s), overhead {wall - engine:.2f} s "
                  f"= {(wall - engine) / engine:.2f}× engine", flush=True)
        wall = statistics.median(r[0] for r in rows)
        engine = statistics.median(r[1] for r in rows)
        overhead = statistics.median(r[0] - r[1] for r in rows)
        ratio = statistics.median((r[0] - r[1]) / r[1] for r in rows)

        # Cache hits: the last version already has its output.
        last = recipe.versions.order_by("-number").first().number
        run_path = f"/api/v1/recipes/{recipe.pk}/run"
        status, body = server.request("POST", run_path, {"version": last})
        assert status == 200 and body["cached"], body
        health_client = APIClient()
        hits = {}
        for where, hit, health in (
            ("in process (Django test client)",
             lambda: client.post(run_path, {"version": last}, format="json"),
             lambda: health_client.get("/api/v1/health/live")),
            ("live gunicorn over HTTP keep-alive",
             lambda: server.request("POST", run_path, {"version": last}),
             lambda: server.request("GET", "/api/v1/health/live", auth=False)),
        ):
            for _ in range(20):  # warm both paths
                hit()
                health()
            # Interleave the two so load on this shared box hits both alike.
            hit_times, health_times = [], []
            for _ in range(args.hits):
                hit_times.append(median_ms(hit, 1))
                health_times.append(median_ms(health, 1))
            hits[where] = (statistics.median(hit_times), statistics.median(health_times))
        # Where a cache hit's time goes (service calls, no HTTP or DRF).
        from hub.accounts.services import api_key_authenticate
        from merges.registry import selectors
        from merges.registry.services import merge_run, merge_run_for, merge_run_with_api_key

        parts = {
            "as the view calls it: API key check, version, inputs and outputs in one round trip": median_ms(
                lambda: merge_run_with_api_key(token=token, recipe_id=recipe.pk, number=last), args.hits
            ),
            "for comparison, the API key check alone (every other authenticated request)": median_ms(
                lambda: api_key_authenticate(token), args.hits
            ),
            "for comparison, merge_run_for after the key check (version, inputs and outputs in one round trip)":
                median_ms(lambda: merge_run_for(user=user, recipe_id=recipe.pk, number=last), args.hits),
            "for comparison, the first run of a version: version lookup, then merge_run's two lookups": median_ms(
                lambda: merge_run(version=selectors.recipe_version_get_for(user, recipe.pk, last), user=user),
                args.hits,
            ),
        }
        jobs = MergeJob.objects.filter(recipe_version__recipe=recipe).count()
    finally:
        server.__exit__(None, None, None)
        stop(worker)

    print()
    print(f"Job overhead over {args.runs} tiny SD1 merges (median): POST→published {wall:.2f} s, "
          f"engine {engine:.2f} s, overhead {overhead:.2f} s")
    print(f"  overhead / engine time = {ratio:.2f}  (target ≤ 2.00)  {'OK' if ratio <= 2 else 'MISSED'}")
    in_worker_overhead = statistics.median(r[0] - r[2] for r in rows)
    print(f"  (wall minus the engine time measured inside the job itself: {in_worker_overhead:.2f} s — dispatch, "
          f"claim, input cache, upload to the store, publish)")
    for where, (hit_ms, health_ms) in hits.items():
        print(f"Cache hit, {where} ({args.hits} requests each): POST …/run median {hit_ms:.2f} ms; "
              f"GET /api/v1/health/live {health_ms:.2f} ms")
        if where.startswith("in process"):
            print(f"  cache hit / health = {hit_ms / health_ms:.2f}  (for comparison; the target is over HTTP)")
        else:
            print(f"  cache hit / health = {hit_ms / health_ms:.2f}  (target ≤ 2.00)  "
                  f"{'OK' if hit_ms / health_ms <= 2 else 'MISSED'}")
    print("  where a cache hit's time goes (in process, median):")
    for label, ms in parts.items():
        print(f"    {label}: {ms:.2f} ms")
    print(f"Jobs created: {jobs} (one per distinct merge; cache hits made none)")


if __name__ == "__main__":
    main()
