"""Fault drills for merge jobs and storage (issue 19 §2), on the production parts.

    bash infra/scripts/services-up.sh   # PostgreSQL, Redis, moto S3
    .venv/bin/python bench/drills_jobs.py

Each drill function returns (name, measured, goal, ok), so `bench/fault_drills.py`
can run them beside its own; run on its own, this prints them.

- `drill_kill_merge`: a real Celery worker (prefork, one child) runs a merge
  job; once it is part-way through, the child process that runs the merge is
  killed with SIGKILL. Measured: seconds from the kill to the next attempt's
  start (the job row's started_at), and the number of outputs once it finished.
  Goal: ≤ 30 s and exactly one output.
- `drill_kill_while_storing`: a process storing a merge-sized output through
  the hub's ingest (`blob_ingest_path`, what the merge worker calls) is killed
  with SIGKILL, once while its multipart upload to S3 is open and once while
  its staged object is being moved to its final key. Then housekeeping
  (`staging_sweep`, with a TTL that the leftovers are past) runs. Measured:
  staging objects and open multipart uploads left. Goal: none.

Run on its own, it uses its own PostgreSQL database (DATABASE_URL, default
mw_jobdrills; created and migrated if missing), REDIS_URL (default db 6) and the
S3 bucket `mergeworks-jobdrills` on the moto server (S3_ENDPOINT_URL); run by
`bench/fault_drills.py`, those of the fault drills.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._live import bench_environ, django_ready, drill_user, ensure_bucket, start_worker, stop  # noqa: E402

bench_environ(database="mw_jobdrills", bucket="mergeworks-jobdrills", redis_db=6, data_dir="jobdrills",
              MERGE_PREVIEWS="false")

RECOVERY_GOAL_S = 30.0


@lru_cache(maxsize=1)
def _setup() -> dict:
    """Django, the schema, the bucket, a user and two tiny SD1 checkpoints in the catalogue (once per process)."""
    django_ready()
    from tests.registry.conftest import tiny_checkpoint_bytes
    from tests.support.builders import make_published_model

    ensure_bucket()
    stamp = f"{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}"
    user = drill_user()
    versions = [
        make_published_model(user, f"Drill input {i} {stamp}", data=tiny_checkpoint_bytes(i),
                             allow_commercial_use=["Image", "RentCivit", "Sell"]).versions.get()
        for i in (1, 2)
    ]
    return {"user": user, "versions": versions, "stamp": stamp}


def _wait(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def drill_kill_merge() -> tuple[str, str, str, bool]:
    """SIGKILL the process running a merge; the next attempt must start within 30 s, with one output in the end."""
    name = "kill -9 of the merge process"
    ctx = _setup()
    import psutil

    from merges.registry.documents import document_text
    from merges.registry.models import MergeJob, MergeOutput
    from merges.registry.services import merge_run, recipe_create
    from tests.registry.conftest import sd1_document
    from workers.celery import app

    base, other = ctx["versions"]
    document = sd1_document(base.pk, other.pk)
    document["seed"] = int(time.time() * 1000) % 2**31  # a merge key no earlier drill made
    recipe = recipe_create(owner=ctx["user"], title=f"Kill drill {ctx['stamp']} {time.monotonic_ns()}",
                           source=document_text(document))
    app.control.purge()
    log = Path(os.environ["MERGEWORKS_DATA_DIR"]) / "drill-kill-merge-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # 968 tensors × 20 ms: long enough for the kill to land mid-merge.
    worker = start_worker(log, f"jobdrill-{os.getpid()}-{time.monotonic_ns()}", append=True, failure=RuntimeError,
                          env={"DB_CONN_MAX_AGE": "0", "MERGE_DEBUG_TENSOR_DELAY": "0.02"})
    try:
        job = merge_run(version=recipe.versions.get(), user=ctx["user"]).job
        _wait(lambda: MergeJob.objects.filter(pk=job.pk, status="running", tensors_done__gte=100).exists(), 120,
              "the merge to get going")
        children = psutil.Process(worker.pid).children()
        if len(children) != 1:
            raise RuntimeError(f"expected one pool child, found {len(children)}")
        os.kill(children[0].pid, signal.SIGKILL)
        killed_at = time.time()
        first = MergeJob.objects.get(pk=job.pk)
        retried = _wait(lambda: MergeJob.objects.filter(pk=job.pk, attempts__gte=2, status="running").first()
                        or MergeJob.objects.filter(pk=job.pk, status__in=MergeJob.FINISHED).first(),
                        120, "the next attempt")
        recovery = retried.started_at.timestamp() - killed_at if retried.attempts >= 2 else float("inf")
        reason = retried.error
        done = _wait(lambda: MergeJob.objects.filter(pk=job.pk, status__in=MergeJob.FINISHED).first(), 300,
                     "the job to finish")
        outputs = MergeOutput.objects.filter(merge_key=job.merge_key).count()
    finally:
        stop(worker)
    ok = recovery <= RECOVERY_GOAL_S and outputs == 1 and done.status == "succeeded"
    measured = (f"attempt 2 started {recovery:.1f} s after the kill (attempt 1 at {first.tensors_done}/"
                f"{first.tensors_total} tensors; shown as {reason!r}); job {done.status} after "
                f"{done.attempts} attempts, {outputs} output(s)")
    return name, measured, f"next attempt ≤ {RECOVERY_GOAL_S:.0f} s, exactly one output", ok


_STORE_SCRIPT = """
import sys, django
django.setup()
from pathlib import Path
from hub.files.services import blob_ingest_path
blob_ingest_path(path=Path(sys.argv[1]))
"""


def _big_output(path: Path, megabytes: int) -> Path:
    """A merge-output-sized safetensors file (distinct bytes per call, so it is never already stored)."""
    import torch
    from safetensors.torch import save_file

    n = megabytes * 1024 * 1024 // 2 // 4
    tensors = {f"model.diffusion_model.block{i}.weight": torch.randn(n, generator=torch.Generator().manual_seed(
        time.monotonic_ns() % 2**31 + i)).half() for i in range(4)}
    save_file(tensors, str(path))
    return path


def _staging_state() -> tuple[list[str], list[str]]:
    from hub.files.storage import blob_storage

    storage = blob_storage()
    client, bucket = storage.client, storage.bucket_name
    objects = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="staging/")
               for o in page.get("Contents", [])]
    uploads = [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return objects, uploads


def _kill_store_when(work: Path, when) -> str:
    """Store a fresh file in a subprocess; SIGKILL it the moment `when(objects, uploads)` holds."""
    source = _big_output(work / f"output-{time.monotonic_ns()}.safetensors", 64)
    proc = subprocess.Popen([sys.executable, "-c", _STORE_SCRIPT, str(source)], cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            objects, uploads = _staging_state()
            if when(objects, uploads):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                return "killed"
            time.sleep(0.02)
        return "finished before the kill" if proc.poll() == 0 else f"failed: {proc.stderr.read()[-500:]!r}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        source.unlink(missing_ok=True)


def drill_kill_while_storing() -> tuple[str, str, str, bool]:
    """SIGKILL a store mid-upload and mid-move; after housekeeping no staging object or multipart upload is left."""
    import tempfile

    name = "kill -9 while storing"
    _setup()
    from django.utils import timezone

    from hub.files.storage import blob_storage
    from hub.uploads.services import staging_sweep

    if not hasattr(blob_storage(), "bucket_name"):
        return name, "skipped: the blob store is not S3", "no staging object or multipart upload left", False
    work = Path(tempfile.mkdtemp(prefix="jobdrill-"))
    in_upload = _kill_store_when(work, lambda objects, uploads: any(k.startswith("staging/ingest/") for k in uploads))
    in_move = _kill_store_when(work, lambda objects, uploads: any(k.startswith("staging/ingest/") for k in objects))
    objects, uploads = _staging_state()
    left_before = (len([k for k in objects if k.startswith("staging/ingest/")]),
                   len([k for k in uploads if k.startswith("staging/ingest/")]))
    # The leftovers are seconds old; housekeeping runs as if its TTL had passed.
    staging_sweep(now=timezone.now() + timezone.timedelta(seconds=5), ttl=1)
    objects, uploads = _staging_state()
    work.rmdir()
    ok = in_upload == "killed" and in_move == "killed" and not objects and not uploads and sum(left_before) >= 2
    measured = (f"kill mid-upload: {in_upload}, kill mid-move: {in_move}; left by the kills: {left_before[0]} "
                f"staging object(s), {left_before[1]} multipart upload(s); after housekeeping: {len(objects)} "
                f"staging object(s), {len(uploads)} multipart upload(s)")
    return name, measured, "no staging object or multipart upload left", ok


DRILLS = [drill_kill_merge, drill_kill_while_storing]


def main() -> int:
    failed = 0
    for drill in DRILLS:
        try:
            name, measured, goal, ok = drill()
        except Exception as exc:  # a drill that cannot run is a failed drill, and the others still run
            name, measured, goal, ok = drill.__name__, f"error: {type(exc).__name__}: {exc}", "runs", False
        failed += not ok
        print(f"{'OK    ' if ok else 'MISSED'} {name}: {measured}  (goal: {goal})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
