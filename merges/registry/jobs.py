"""Running a merge job on a worker.

The job row is the truth. A worker claims it with one conditional UPDATE
(queued → running, attempts + 1) and only acts if that UPDATE changed a row,
so a redelivered message for a job that is running elsewhere or already
finished does nothing. While the engine runs, a heartbeat thread writes the
progress (throttled) and the heartbeat, and looks for a cancel request. A
redelivered message takes over a running job whose heartbeat has stopped
(`_claim`), so a killed worker's job is retried within seconds; the sweeper
(`services.merge_jobs_sweep`) requeues one whose message did not come back.
The result is published in the same transaction that marks the job succeeded,
under a row lock and only if this attempt still owns the job, so a job is
published at most once however many workers touched it.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from hub.community.services import merge_job_notify
from hub.files.services import FileRejected, blob_ingest_path
from hub.files.storage import blob_storage
from merges.registry import conf
from merges.registry.models import MergeJob, MergeOutput
from merges.registry.services import merge_output_publish
from hub.files.input_cache import CacheVerifyError, InputCache, storage_fetcher

logger = logging.getLogger(__name__)


class TransientJobError(Exception):
    """A failure worth another attempt (storage or network trouble), not a fault of the recipe."""


@dataclass
class Outcome:
    status: str
    detail: str = ""


def input_cache() -> InputCache:
    return InputCache(conf.cache_dir(), conf.cache_max_bytes())


def _claim(job_id: int, worker: str) -> MergeJob | None:
    """Take the job for this attempt, or None if it is not ours to run.

    A queued job is taken at once. A running one is taken over only once its
    heartbeat has stopped for `conf.stale_seconds()`: a worker killed mid-merge
    gets its message redelivered straight away (acks_late and
    reject_on_worker_lost), and rather than drop it because the row still says
    running, this waits, watching the heartbeat, until the heartbeat either
    moves (the job is alive elsewhere: a duplicate message, dropped) or goes
    stale (the attempt died: take it over and say so in `error`).
    """
    limit = conf.max_attempts()
    stale = conf.stale_seconds()
    poll = min(max(conf.heartbeat_seconds(), 0.2), 1.0)
    watched: tuple[int, Any] | None = None
    deadline = time.monotonic() + stale + 4 * poll + 2
    while True:
        now = timezone.now()
        claim = dict(
            status=MergeJob.Status.RUNNING, attempts=F("attempts") + 1, worker=worker[:200], started_at=now,
            heartbeat_at=now,
            # A retry starts its progress over rather than showing the lost attempt's.
            phase=MergeJob.Phase.FETCHING,
            progress=0.0,
            tensors_done=0,
            tensors_total=0,
            bytes_done=0,
            bytes_total=0,
        )
        ours = MergeJob.objects.filter(pk=job_id, attempts__lt=limit, cancel_requested=False)
        # `error` keeps why the previous attempt was retried, for the API, until the job ends.
        if ours.filter(status=MergeJob.Status.QUEUED).update(**claim):
            return MergeJob.objects.select_related("recipe_version", "requested_by").get(pk=job_id)
        row = MergeJob.objects.filter(pk=job_id).values(
            "status", "attempts", "heartbeat_at", "worker", "cancel_requested"
        ).first()
        if row is None or row["status"] != MergeJob.Status.RUNNING:
            break
        beat = row["heartbeat_at"]
        silent = (now - beat).total_seconds() if beat else stale
        if silent >= stale:
            dead = MergeJob.objects.filter(pk=job_id, status=MergeJob.Status.RUNNING, attempts=row["attempts"],
                                           heartbeat_at=beat)
            reason = (f"attempt {row['attempts']} stopped: no heartbeat from {row['worker'] or 'its worker'} "
                      f"for {silent:.0f} s")
            if row["cancel_requested"]:
                dead.update(status=MergeJob.Status.CANCELLED, finished_at=now, error=f"{reason}; cancelled")
                return None
            if row["attempts"] >= limit:
                dead.update(status=MergeJob.Status.FAILED, finished_at=now,
                            error=f"{reason}; gave up after {limit} attempts")
                return None
            if dead.filter(cancel_requested=False).update(
                **claim, error=f"{reason}; retrying as attempt {row['attempts'] + 1}"
            ):
                logger.warning("merge job %s: %s; taking it over", job_id, reason)
                return MergeJob.objects.select_related("recipe_version", "requested_by").get(pk=job_id)
            continue  # someone else changed the row meanwhile: look again
        if watched is not None and watched != (row["attempts"], beat):
            return None  # the heartbeat moved: that attempt is alive elsewhere
        if time.monotonic() > deadline:
            return None
        watched = (row["attempts"], beat)
        time.sleep(min(poll, max(stale - silent, 0.05)))
    # Not claimable: finished, cancelled, or out of attempts.
    now = timezone.now()
    MergeJob.objects.filter(pk=job_id, status=MergeJob.Status.QUEUED, attempts__gte=limit).update(
        status=MergeJob.Status.FAILED,
        finished_at=now,
        error=f"gave up after {limit} attempts",
    )
    MergeJob.objects.filter(pk=job_id, status=MergeJob.Status.QUEUED, cancel_requested=True).update(
        status=MergeJob.Status.CANCELLED, finished_at=now
    )
    return None


def _enter_phase(job: MergeJob, attempt: int, phase: str) -> None:
    MergeJob.objects.filter(pk=job.pk, status=MergeJob.Status.RUNNING, attempts=attempt).update(phase=phase)


def _finish(job: MergeJob, attempt: int, **fields: Any) -> bool:
    """Write a final state if this attempt still owns the job."""
    fields.setdefault("finished_at", timezone.now())
    finished = bool(
        MergeJob.objects.filter(pk=job.pk, status=MergeJob.Status.RUNNING, attempts=attempt).update(**fields)
    )
    if finished:
        merge_job_notify(job_id=job.pk)  # community notifications
    return finished


class _Heartbeat:
    """Writes progress and the heartbeat every few hundred ms from its own thread, and watches for cancel."""

    def __init__(self, job_id: int, attempt: int):
        self.job_id = job_id
        self.attempt = attempt
        self.cancel = threading.Event()
        self.lost = False  # another attempt took the job over
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._progress: tuple[int, int, int, int] = (0, 0, 0, 0)
        self._written: tuple[int, int, int, int] | None = None
        self._delay = conf.debug_tensor_delay()
        self._thread = threading.Thread(target=self._run, name=f"merge-job-{job_id}-heartbeat", daemon=True)

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    # engine callbacks (engine thread)
    def progress(self, done_tensors: int, total_tensors: int, done_bytes: int, total_bytes: int) -> None:
        with self._lock:
            self._progress = (done_tensors, total_tensors, done_bytes, total_bytes)
        if self._delay:
            time.sleep(self._delay)

    def should_cancel(self) -> bool:
        return self.cancel.is_set()

    # heartbeat thread
    def _run(self) -> None:
        try:
            interval = conf.heartbeat_seconds()
            while not self._stop.wait(interval):
                self._beat()
            self._beat()
        finally:
            connection.close()  # this thread's own connection

    def _beat(self) -> None:
        with self._lock:
            done, total, bdone, btotal = self._progress
        fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
        if (done, total, bdone, btotal) != self._written:
            fields.update(
                tensors_done=done,
                tensors_total=total,
                bytes_done=bdone,
                bytes_total=btotal,
                progress=(bdone / btotal) if btotal else (done / total if total else 0.0),
            )
        try:
            owned = MergeJob.objects.filter(
                pk=self.job_id, status=MergeJob.Status.RUNNING, attempts=self.attempt
            ).update(**fields)
            if not owned:
                self.lost = True
                self.cancel.set()
                return
            self._written = (done, total, bdone, btotal)
            if MergeJob.objects.filter(pk=self.job_id, cancel_requested=True).exists():
                self.cancel.set()
        except Exception:  # a missed beat is retried next time; the merge goes on
            logger.exception("merge job %s: heartbeat failed", self.job_id)
            connection.close()


def _fetch_inputs(job: MergeJob, cache: InputCache, stack: ExitStack) -> dict[str, Path]:
    storage = blob_storage()
    paths: dict[str, Path] = {}
    for name, ref in sorted(job.inputs.items()):
        try:
            entry = stack.enter_context(cache.lease(ref["sha256"], storage_fetcher(storage, ref["storage_key"])))
        except (OSError, CacheVerifyError) as exc:
            raise TransientJobError(f"input {name!r}: could not fetch {ref['sha256'][:12]}…: {exc}") from exc
        except Exception as exc:  # botocore errors have no common base we can import cheaply
            raise TransientJobError(f"input {name!r}: could not fetch {ref['sha256'][:12]}…: {exc}") from exc
        paths[name] = entry.path
    return paths


def _upload(path: Path, expected_sha256: str | None):
    """Stream the output through the ingest service (staging key, hashes, strict header check, final key)."""
    try:
        blob = blob_ingest_path(path=path)
    except FileRejected as exc:
        raise RuntimeError(f"the engine wrote a file the hub rejects: {exc}") from exc
    except Exception as exc:
        raise TransientJobError(f"could not store the output: {exc}") from exc
    if expected_sha256 and blob.sha256 != expected_sha256.lower():
        raise TransientJobError(f"stored output hashes to {blob.sha256}, the engine wrote {expected_sha256}")
    storage = blob_storage()
    if storage.size(blob.storage_key) != blob.size:
        raise TransientJobError("the stored output does not have the size that was written")
    return blob


def _preview_hook(model_version_id: int) -> None:
    """Ask for the output's preview grid, where this deployment renders previews.

    Rendering lives in hub.previews (the service enqueues its task by name);
    the service never raises, it logs why nothing was rendered.
    """
    from django.apps import apps

    if not conf.previews_enabled() or not apps.is_installed("hub.previews"):
        return
    from hub.previews.services import render_request_for_merge

    render_request_for_merge(model_version_id=model_version_id)


def merge_job_execute(*, job_id: int, worker: str) -> Outcome:
    """Run job `job_id` on this worker (idempotent; see module docstring)."""
    # Imported before the claim: a cold torch import must not eat into the heartbeat's silence.
    from merges.engine import ENGINE_VERSION, run_recipe
    from merges.engine.executor import MergeCancelled

    job = _claim(job_id, worker)
    if job is None:
        return Outcome("skipped", "not claimable (finished, cancelled, running elsewhere or out of attempts)")
    attempt = job.attempts

    # The same merge may have been published since this job was queued.
    done = MergeOutput.objects.filter(merge_key=job.merge_key).order_by("id").first()
    if done is not None:
        _finish(job, attempt, status=MergeJob.Status.SUCCEEDED, output_id=done.model_version_id, progress=1.0, error="")
        return Outcome("succeeded", "cached")

    cache = input_cache()
    # A killed earlier attempt of this job may have left its work folder behind.
    for leftover in cache.root.glob(f"merge-{job.pk}-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    heartbeat = _Heartbeat(job.pk, attempt)
    try:
        with ExitStack() as stack, heartbeat:
            paths = _fetch_inputs(job, cache, stack)
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"merge-{job.pk}-", dir=cache.root)))
            out_path = workdir / "output.safetensors"
            _enter_phase(job, attempt, MergeJob.Phase.MERGING)
            started = time.perf_counter()
            result = run_recipe(
                job.recipe_version.document,
                {name: str(p) for name, p in paths.items()},
                str(out_path),
                device=conf.device(),
                progress=heartbeat.progress,
                should_cancel=heartbeat.should_cancel,
                # Verified by the cache on fetch; the engine need not hash them again.
                input_sha256s={name: ref["sha256"] for name, ref in job.inputs.items()},
                # The ingest of the output computes every hash; hashing while writing would be a second pass.
                hash_output=False,
            )
            engine_seconds = time.perf_counter() - started
            if heartbeat.lost:
                return Outcome("superseded", "another attempt took the job over")
            _enter_phase(job, attempt, MergeJob.Phase.STORING)
            blob = _upload(out_path, getattr(result, "sha256", None))
    except MergeCancelled:
        if heartbeat.lost:
            return Outcome("superseded", "another attempt took the job over")
        _finish(job, attempt, status=MergeJob.Status.CANCELLED, error="cancelled while running")
        return Outcome("cancelled")
    except TransientJobError as exc:
        return _retry_or_fail(job, attempt, str(exc))
    except Exception as exc:
        logger.exception("merge job %s failed", job.pk)
        _finish(job, attempt, status=MergeJob.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:4000])
        return Outcome("failed", str(exc))

    with transaction.atomic():
        locked = MergeJob.objects.select_for_update().get(pk=job.pk)
        if locked.status != MergeJob.Status.RUNNING or locked.attempts != attempt:
            return Outcome("superseded", "another attempt finished the job")
        version = merge_output_publish(
            recipe_version=job.recipe_version,
            requester=job.requested_by,
            blob=blob,
            merge_key=job.merge_key,
            inputs=job.inputs,
            engine_version=ENGINE_VERSION,
            job=locked,
        )
        MergeJob.objects.filter(pk=job.pk).update(
            status=MergeJob.Status.SUCCEEDED,
            output=version,
            progress=1.0,
            tensors_done=F("tensors_total"),
            bytes_done=F("bytes_total"),
            finished_at=timezone.now(),
            engine_seconds=engine_seconds,
            error="",
        )
        merge_job_notify(job_id=job.pk)  # community notifications
        transaction.on_commit(lambda: _preview_hook(version.pk))
    return Outcome("succeeded", f"model version {version.pk}")


def _retry_or_fail(job: MergeJob, attempt: int, reason: str) -> Outcome:
    if attempt >= conf.max_attempts():
        _finish(job, attempt, status=MergeJob.Status.FAILED, error=f"gave up after {attempt} attempts: {reason}"[:4000])
        return Outcome("failed", reason)
    requeued = MergeJob.objects.filter(pk=job.pk, status=MergeJob.Status.RUNNING, attempts=attempt).update(
        status=MergeJob.Status.QUEUED, worker="", error=f"attempt {attempt} failed, retrying: {reason}"[:4000],
        enqueued_at=timezone.now(),
    )
    return Outcome("retry" if requeued else "superseded", reason)
