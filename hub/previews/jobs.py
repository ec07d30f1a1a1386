"""Running a render job on a worker: claim, fetch, render, store, publish, all idempotent.

* The job is claimed with a conditional update (queued, or running with a
  stale heartbeat, and attempts left), so a duplicate or redelivered message
  does nothing while another attempt is alive, and a finished job is never
  rendered again.
* Checkpoints come from the local content-addressed input cache (shared with
  merges, verified by SHA-256) and are loaded through a ``.safetensors`` link.
* Files are written under keys derived from the render key, then the grid
  and image rows are created in one transaction that also finishes the job.
  If anything fails, the files this attempt wrote are deleted, so nothing
  half-written is ever visible.
* Bad requests and unloadable files (``RenderError``) fail the job at once
  with their reason; anything else (storage, database, lost GPU) is retried
  with backoff until the attempts run out.
"""
from __future__ import annotations

import io
import logging
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from hub.files.storage import blob_storage
from hub.previews import conf
from hub.community.services import render_job_notify
from hub.previews.models import PreviewGrid, PreviewImage, RenderJob
from hub.files.input_cache import InputCache, storage_fetcher
from hub.previews.renderer.errors import RenderError

# Shown to the owner when a render failed for reasons on the hub's side (details are in the logs).
GAVE_UP_REASON = (
    "The preview worker could not finish this render after several tries. "
    "Try again later; if it keeps failing, tell the site's administrators."
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: str  # succeeded | failed | retry | skipped
    detail: str = ""
    # For "retry": seconds to wait before the next attempt (10 s, 20 s, 40 s … capped at 10 minutes).
    retry_in: float = 0.0


def media_storage():
    return storages["default"]


def grid_prefix(version_id: int, key: str) -> str:
    return f"previews/v{version_id}/{key}"


# --- claiming and finishing -----------------------------------------------------------------------


def _claimable() -> Q:
    stale_before = timezone.now() - timedelta(seconds=conf.stale_seconds())
    return Q(status=RenderJob.Status.QUEUED) | Q(status=RenderJob.Status.RUNNING, heartbeat_at__lt=stale_before)


def _claim(job_id: int, worker: str) -> RenderJob | None:
    now = timezone.now()
    n = RenderJob.objects.filter(_claimable(), pk=job_id, attempts__lt=conf.max_attempts()).update(
        status=RenderJob.Status.RUNNING,
        attempts=F("attempts") + 1,
        worker=worker[:200],
        started_at=now,
        heartbeat_at=now,
        images_done=0,
        error="",
        reason="",
    )
    if n == 1:
        return RenderJob.objects.select_related("model_version", "model_version__model").get(pk=job_id)
    RenderJob.objects.filter(_claimable(), pk=job_id, attempts__gte=conf.max_attempts()).update(
        status=RenderJob.Status.FAILED,
        finished_at=now,
        error=f"gave up after {conf.max_attempts()} attempts",
        reason=GAVE_UP_REASON,
    )
    return None


def _owned(job: RenderJob, attempt: int):
    return RenderJob.objects.filter(pk=job.pk, status=RenderJob.Status.RUNNING, attempts=attempt)


def _fail(job: RenderJob, attempt: int, detail: str, reason: str) -> Outcome:
    logger.warning("render job %s failed: %s", job.pk, detail)
    _owned(job, attempt).update(
        status=RenderJob.Status.FAILED, error=detail[:2000], reason=reason[:2000], finished_at=timezone.now()
    )
    render_job_notify(job_id=job.pk)  # community notifications
    return Outcome("failed", detail)


class _Heartbeat:
    """Writes heartbeat_at every few seconds while the render runs, so a dead worker is noticed quickly."""

    def __init__(self, job_id: int, attempt: int):
        self.job_id, self.attempt = job_id, attempt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"render-heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            while not self._stop.wait(conf.heartbeat_seconds()):
                try:
                    RenderJob.objects.filter(
                        pk=self.job_id, status=RenderJob.Status.RUNNING, attempts=self.attempt
                    ).update(heartbeat_at=timezone.now())
                except Exception:  # a missed beat is retried next time
                    logger.exception("render job %s: heartbeat failed", self.job_id)
        finally:
            connection.close()


# --- files --------------------------------------------------------------------------------------


def input_cache() -> InputCache:
    return InputCache(conf.cache_dir(), conf.cache_max_bytes())


def _local_safetensors(ref: dict[str, Any], cache: InputCache, stack: ExitStack, workdir: Path) -> Path:
    """A ``<sha256>.safetensors`` link to the verified cached copy (diffusers picks its loader by suffix)."""
    entry = stack.enter_context(cache.lease(ref["sha256"], storage_fetcher(blob_storage(), ref["storage_key"])))
    link = workdir / f"{ref['sha256']}.safetensors"
    if not link.exists():
        link.symlink_to(entry.path)
    return link


class _Writer:
    """Stores files under the grid's keys and remembers them, so a failure can take them all back."""

    def __init__(self) -> None:
        self.storage = media_storage()
        self.written: list[str] = []

    def put(self, key: str, data: bytes) -> None:
        self.written.append(key)
        if hasattr(self.storage, "put_stream"):
            self.storage.put_stream(key, io.BytesIO(data))
        else:
            if self.storage.exists(key):
                self.storage.delete(key)
            self.storage.save(key, ContentFile(data))

    def rollback(self) -> None:
        for key in self.written:
            try:
                self.storage.delete(key)
            except Exception:
                logger.exception("render: could not remove %s after a failed render", key)
        self.written.clear()


# --- the job ----------------------------------------------------------------------------------------


def render_job_execute(*, job_id: int, worker: str) -> Outcome:
    job = _claim(job_id, worker)
    if job is None:
        return Outcome("skipped", "not claimable (finished, running elsewhere or out of attempts)")
    attempt = job.attempts
    done = PreviewGrid.objects.filter(model_version_id=job.model_version_id, render_key=job.render_key).first()
    if done is not None:
        _owned(job, attempt).update(
            status=RenderJob.Status.SUCCEEDED, grid=done, images_done=F("images_total"), finished_at=timezone.now()
        )
        return Outcome("succeeded", "grid already rendered")

    writer = _Writer()
    started = time.perf_counter()
    try:
        with _Heartbeat(job.pk, attempt):
            result = _render(job, attempt)
            files = _encode(job, result)
            for key, data in files.items():
                writer.put(key, data)
            published = _publish(job, attempt, result, files, time.perf_counter() - started)
        if not published:
            # Another attempt owns the job now (we were presumed dead); it writes the same keys.
            writer.written.clear()
            return Outcome("skipped", "lost the job to another attempt")
        if job.attach_examples:
            _examples_attach(job, result, files)
        return Outcome("succeeded", f"{len(result.cells)} images")
    except RenderError as exc:
        writer.rollback()
        return _fail(job, attempt, str(exc), exc.reason)
    except Exception as exc:
        writer.rollback()
        logger.exception("render job %s: attempt %s failed", job.pk, attempt)
        reason = f"{type(exc).__name__}: {str(exc)[:500]}"
        if attempt >= conf.max_attempts():
            return _fail(job, attempt, f"gave up after {attempt} attempts: {reason}", GAVE_UP_REASON)
        _owned(job, attempt).update(status=RenderJob.Status.QUEUED, error=f"attempt {attempt} failed: {reason}")
        return Outcome("retry", reason, retry_in=min(10 * 2 ** (attempt - 1), 600))
    finally:
        from hub.previews.renderer.pipeline import PIPELINES

        PIPELINES.trim(conf.min_free_bytes())


def _render(job: RenderJob, attempt: int):
    from hub.previews.renderer.base_configs import config_choose
    from hub.previews.renderer.pipeline import (
        PIPELINES,
        PipelineKey,
        load_pipeline,
        lora_apply,
        lora_strength_set,
        memory_savers_enable,
        memory_short,
    )
    from hub.previews.renderer.render import ModelInfo, render_grid
    from hub.previews.renderer.spec import parse_spec
    from hub.previews.renderer.sweep import AlphaSweep

    # Stored specs were validated when requested; parsing again also catches hand-edited rows.
    spec = parse_spec(job.spec, max_images=max(conf.max_images(), job.images_total))
    device = conf.device()
    checkpoint, lora, secondary = (job.inputs.get(role) for role in ("checkpoint", "lora", "secondary"))
    cache = input_cache()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"render-{job.pk}-")))
        ckpt_path = _local_safetensors(checkpoint, cache, stack, workdir)
        # The config is chosen by the file's tensors; the base model it is labelled with only goes first.
        choice = config_choose(ckpt_path, conf.base_configs_dir(), preferred=job.base_config)
        config_dir, arch = choice.config_dir, choice.arch
        key = PipelineKey(
            arch=arch,
            checkpoint_sha256=checkpoint["sha256"],
            config_dir=str(config_dir),
            device=device,
            lora_sha256=lora["sha256"] if lora else None,
            sweep_with=secondary["sha256"] if secondary else None,
        )
        lora_path = _local_safetensors(lora, cache, stack, workdir) if lora else None
        if secondary:
            # A sweep leaves the last alpha's weights in its pipeline: always start from the file.
            PIPELINES.drop()
        pipe = PIPELINES.get(
            key,
            lambda: load_pipeline(arch, ckpt_path, config_dir, device=device),
            lora=(lambda p: lora_apply(p, lora_path, spec.lora_strength)) if lora_path else None,
        )
        if lora_path:
            lora_strength_set(pipe, spec.lora_strength)
        if memory_short(device, conf.min_free_bytes()):
            # Slower, but a big grid still fits; render_cells also switches them on after an OOM.
            memory_savers_enable(pipe)
        sweep = None
        if secondary:
            second_path = _local_safetensors(secondary, cache, stack, workdir)
            hashes = (checkpoint["sha256"][:10], secondary["sha256"][:10])
            sweep = AlphaSweep.prepare(
                pipe,
                arch,
                second_path,
                config_dir,
                describe=lambda a: {"Merge": f"weighted_sum({hashes[0]}, {hashes[1]}), alpha {a:g}"},
            )

        def progress(done: int, total: int) -> None:
            _owned(job, attempt).update(images_done=done, heartbeat_at=timezone.now())

        model = ModelInfo(
            hash=checkpoint.get("autov2") or checkpoint["sha256"][:10],
            name=Path(checkpoint.get("name", "")).stem,
            lora_name=Path(lora.get("name", "")).stem if lora else "",
            lora_hash=(lora.get("autov3") or lora["sha256"])[:12] if lora else "",
        )
        return render_grid(
            pipe, spec, model, batch_size=conf.batch_size(device), progress=progress, sweep=sweep
        )


def _encode(job: RenderJob, result) -> dict[str, bytes]:
    from hub.previews.renderer.infotext import png_bytes, webp_thumbnail_bytes

    prefix = grid_prefix(job.model_version_id, job.render_key)
    files = {f"{prefix}/grid.png": png_bytes(result.grid), f"{prefix}/grid.webp": webp_thumbnail_bytes(result.grid, 1024)}
    for rc in result.cells:
        name = f"{prefix}/r{rc.cell.row}c{rc.cell.col}"
        files[f"{name}.png"] = png_bytes(rc.image, rc.parameters)
        files[f"{name}.webp"] = webp_thumbnail_bytes(rc.image)
    return files


def _publish(job: RenderJob, attempt: int, result, files: dict[str, bytes], seconds: float) -> bool:
    import hashlib

    prefix = grid_prefix(job.model_version_id, job.render_key)
    spec = job.spec
    inputs = job.inputs
    with transaction.atomic():
        locked = _owned(job, attempt).select_for_update().first()
        if locked is None:
            return False
        grid, _ = PreviewGrid.objects.get_or_create(
            model_version_id=job.model_version_id,
            render_key=job.render_key,
            defaults=dict(
                layout=PreviewGrid.Layout.ALPHA if spec.get("alphas") else PreviewGrid.Layout.SEEDS,
                spec=spec,
                row_labels=list(result.plan.row_labels),
                col_labels=list(result.plan.col_labels),
                image_key=f"{prefix}/grid.png",
                thumb_key=f"{prefix}/grid.webp",
                width=result.grid.width,
                height=result.grid.height,
                checkpoint_sha256=inputs["checkpoint"]["sha256"],
                lora_sha256=(inputs.get("lora") or {}).get("sha256", ""),
                secondary_sha256=(inputs.get("secondary") or {}).get("sha256", ""),
                base_version_id=job.base_version_id,
                secondary_version_id=job.secondary_version_id,
                created_by_id=job.requested_by_id,
            ),
        )
        if not grid.images.exists():
            PreviewImage.objects.bulk_create(
                PreviewImage(
                    grid=grid,
                    row=rc.cell.row,
                    col=rc.cell.col,
                    prompt=rc.cell.prompt,
                    negative=spec.get("negative", ""),
                    seed=rc.cell.seed,
                    alpha=rc.cell.alpha,
                    parameters=rc.parameters,
                    image_key=f"{prefix}/r{rc.cell.row}c{rc.cell.col}.png",
                    thumb_key=f"{prefix}/r{rc.cell.row}c{rc.cell.col}.webp",
                    width=rc.image.width,
                    height=rc.image.height,
                    sha256=hashlib.sha256(files[f"{prefix}/r{rc.cell.row}c{rc.cell.col}.png"]).hexdigest(),
                )
                for rc in result.cells
            )
        _owned(job, attempt).update(
            status=RenderJob.Status.SUCCEEDED,
            grid=grid,
            images_done=len(result.cells),
            finished_at=timezone.now(),
            render_seconds=seconds,
        )
        render_job_notify(job_id=job.pk)  # community notifications
    return True


EXAMPLES_FROM_GRID = 4


def _examples_attach(job: RenderJob, result, files: dict[str, bytes]) -> None:
    """Make the first rendered images the version's example images, if it has none (PNG parameters kept).

    Runs after the grid is published; a failure here is logged and never fails the render.
    """
    from hub.uploads.services import example_image_add

    version = job.model_version
    try:
        if version.images.exists():
            return
        prefix = grid_prefix(job.model_version_id, job.render_key)
        for rc in result.cells[:EXAMPLES_FROM_GRID]:
            data = files[f"{prefix}/r{rc.cell.row}c{rc.cell.col}.png"]
            example_image_add(version=version, user=job.requested_by, f=io.BytesIO(data), size=len(data))
    except Exception:
        logger.exception("render job %s: could not attach its images as examples", job.pk)


def render_jobs_sweep() -> dict[str, int]:
    """Periodic: requeue running jobs whose worker died, fail those out of attempts."""
    from hub.previews.services import _enqueue

    now = timezone.now()
    stale_before = now - timedelta(seconds=conf.stale_seconds())
    counts = {"requeued": 0, "failed": 0}
    for job in RenderJob.objects.filter(status=RenderJob.Status.RUNNING, heartbeat_at__lt=stale_before).only(
        "id", "attempts", "heartbeat_at"
    ):
        same = RenderJob.objects.filter(pk=job.pk, status=RenderJob.Status.RUNNING, heartbeat_at=job.heartbeat_at)
        if job.attempts >= conf.max_attempts():
            counts["failed"] += same.update(
                status=RenderJob.Status.FAILED,
                finished_at=now,
                error=f"the worker was lost; gave up after {job.attempts} attempts",
                reason=GAVE_UP_REASON,
            )
            continue
        with transaction.atomic():
            n = same.update(status=RenderJob.Status.QUEUED, worker="", error=f"attempt {job.attempts} lost its worker; retrying")
            if n:
                job_id = job.pk
                transaction.on_commit(lambda: _enqueue(job_id))
        counts["requeued"] += n
    return counts
