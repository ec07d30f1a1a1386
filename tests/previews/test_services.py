"""Requesting previews: specs, inputs, sharing identical requests, defaults, LoRA bases, merge outputs."""
from __future__ import annotations

import pytest

from hub.previews.models import LoraPreviewBase, PreviewGrid, RenderJob
from hub.previews.services import PreviewError, lora_preview_base_set, render_request_create, render_request_for_merge
from tests.previews.conftest import SMALL, checkpoint_version
from tests.support.builders import make_published_model


def test_request_creates_one_job_and_enqueues_it_after_commit(checkpoint, alice, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = render_request_create(model_version=checkpoint, requested_by=alice, spec={**SMALL, "sampler": "DDIM"})
    assert enqueued == [job.pk]
    assert (job.status, job.images_total, job.images_done, job.arch, job.base_config) == ("queued", 4, 0, "sd1", "sd15")
    assert job.spec["sampler"] == "DDIM" and job.spec["size"] == [64, 64]
    file = checkpoint.files.get()
    assert job.inputs == {
        "checkpoint": {
            "sha256": file.sha256, "storage_key": file.storage_key, "size": file.size_bytes, "name": file.name,
            "autov2": file.autov2, "autov3": file.autov3, "model_version": checkpoint.pk,
        }
    }
    # The same request shares the active job; another spec gets its own.
    again = render_request_create(model_version=checkpoint, requested_by=alice, spec={**SMALL, "sampler": "DDIM"})
    assert again.pk == job.pk
    other = render_request_create(model_version=checkpoint, requested_by=alice, spec={**SMALL, "seeds": [7]})
    assert other.pk != job.pk and other.render_key != job.render_key and other.images_total == 2


def test_defaults_come_from_the_base_model(checkpoint, alice, enqueued, settings):
    job = render_request_create(model_version=checkpoint, requested_by=alice, spec={})
    assert job.spec["prompts"] == SMALL["prompts"] and job.spec["negative"].startswith("low quality")
    settings.PREVIEW_DEFAULT_SPEC = {}
    job = render_request_create(model_version=checkpoint, requested_by=alice, spec={"seeds": [1]})
    assert job.spec["size"] == [512, 512] and job.spec["steps"] == 20 and len(job.spec["prompts"]) == 4


def test_a_finished_grid_is_not_rendered_again(checkpoint, alice, enqueued):
    job = render_request_create(model_version=checkpoint, requested_by=alice, spec=SMALL)
    grid = PreviewGrid.objects.create(
        model_version=checkpoint, render_key=job.render_key, spec=job.spec, image_key="k", thumb_key="t",
        width=1, height=1, checkpoint_sha256=job.inputs["checkpoint"]["sha256"],
    )
    RenderJob.objects.filter(pk=job.pk).update(status="succeeded", grid=grid)
    again = render_request_create(model_version=checkpoint, requested_by=alice, spec=SMALL)
    assert (again.status, again.grid_id, again.images_done) == ("succeeded", grid.pk, 4)
    assert not RenderJob.objects.filter(status__in=["queued", "running"]).exists()


@pytest.mark.parametrize(
    ("spec", "field"),
    [({"prompts": [""]}, "prompts[0]"), ({"size": [64, 70]}, "size"), ({"sampler": "nope"}, "sampler"),
     ({"prompts": ["a"] * 9, "seeds": list(range(8))}, "seeds")],
)
def test_bad_explicit_specs_are_refused_with_their_field(checkpoint, alice, enqueued, spec, field):
    with pytest.raises(PreviewError) as info:
        render_request_create(model_version=checkpoint, requested_by=alice, spec=spec)
    assert info.value.field == field and info.value.status == 400
    assert not RenderJob.objects.exists() and enqueued == []


def test_lora_needs_a_base_checkpoint(lora, checkpoint, alice, bob, enqueued):
    with pytest.raises(PreviewError, match="no default checkpoint") as info:
        render_request_create(model_version=lora, requested_by=alice, spec=SMALL)
    assert info.value.code == "no_base"
    # chosen by the requester
    job = render_request_create(model_version=lora, requested_by=alice, spec=SMALL, base_version=checkpoint)
    assert job.base_version_id == checkpoint.pk
    assert job.inputs["checkpoint"]["model_version"] == checkpoint.pk
    assert job.inputs["lora"]["model_version"] == lora.pk and job.inputs["lora"]["name"] == "tiny-style.safetensors"
    # or the default for its base model
    lora_preview_base_set(base_model="SD 1.5", checkpoint=checkpoint)
    default = render_request_create(model_version=lora, requested_by=bob, spec={**SMALL, "lora_strength": 0.5})
    assert default.base_version_id == checkpoint.pk and default.spec["lora_strength"] == 0.5
    # an SDXL checkpoint cannot carry an SD1 LoRA; a LoRA is no base
    xl = checkpoint_version(alice, "Tiny XL", base_model="SDXL 1.0", arch="sdxl")
    with pytest.raises(PreviewError, match="cannot be previewed on"):
        render_request_create(model_version=lora, requested_by=alice, spec=SMALL, base_version=xl)
    with pytest.raises(PreviewError, match="on a checkpoint"):
        render_request_create(model_version=lora, requested_by=alice, spec=SMALL, base_version=lora)
    with pytest.raises(PreviewError):
        LoraPreviewBase.objects.all().delete()
        lora_preview_base_set(base_model="SDXL 1.0", checkpoint=checkpoint)


def test_unsupported_versions_and_private_inputs(alice, bob, preview_settings, enqueued, checkpoint):
    flux = make_published_model(alice, "Flux Thing", base_model="Flux.1 D").versions.get()
    with pytest.raises(PreviewError, match="not available for Flux.1 D"):
        render_request_create(model_version=flux, requested_by=alice, spec=SMALL)
    private = checkpoint_version(bob, "Bob Private", seed=1)
    private.model.visibility = "private"
    private.model.save()
    with pytest.raises(PreviewError) as info:
        render_request_create(model_version=checkpoint, requested_by=alice, spec={**SMALL, "alphas": [0, 1]},
                              secondary_version=private)
    assert info.value.status == 404


def test_active_jobs_per_user_are_capped(checkpoint, alice, enqueued, settings):
    settings.RENDER_MAX_ACTIVE_PER_USER = 2
    for seed in (1, 2):
        render_request_create(model_version=checkpoint, requested_by=alice, spec={**SMALL, "seeds": [seed]})
    with pytest.raises(PreviewError) as info:
        render_request_create(model_version=checkpoint, requested_by=alice, spec={**SMALL, "seeds": [3]})
    assert info.value.status == 429


def _merge_output(owner, output_version, inputs: dict[str, int], preview: dict | None):
    from merges.registry.models import MergeJob, MergeOutput
    from merges.registry.services import recipe_create, recipe_latest_version

    document = {
        "format": "mergeworks/recipe@1",
        "architecture": "sd1",
        "inputs": {name: {"model_version": vid} for name, vid in inputs.items()},
        "steps": [{"id": "mix", "op": "weighted_sum", "inputs": list(inputs), "alpha": 0.4}],
        "output": {"step": "mix", "dtype": "fp16"},
    }
    if preview is not None:
        document["preview"] = preview
    recipe = recipe_create(owner=owner, title="Mix", source=document)
    version = recipe_latest_version(recipe)
    from hub.catalog.models import ModelVersion

    files = {name: ModelVersion.objects.get(pk=vid).files.get() for name, vid in inputs.items()}
    job = MergeJob.objects.create(
        recipe_version=version, merge_key="k" * 64, requested_by=owner, status="succeeded", engine_version="0",
        inputs={n: {"sha256": f.sha256, "size": f.size_bytes, "storage_key": f.storage_key, "model_version": f.version_id}
                for n, f in files.items()},
    )
    MergeOutput.objects.create(model_version=output_version, recipe_version=version, merge_key="k" * 64, job=job,
                               sha256=output_version.files.get().sha256, engine_version="0")


def test_after_a_merge_the_recipes_preview_block_is_rendered(alice, checkpoint, enqueued, django_capture_on_commit_callbacks):
    other = checkpoint_version(alice, "Tiny Other", seed=3)
    output = checkpoint_version(alice, "Tiny Mix", seed=4)
    _merge_output(alice, output, {"a": checkpoint.pk, "b": other.pk},
                  {"prompts": ["a red chair"], "seeds": [5, 6], "steps": 3, "cfg": 6.0, "size": [64, 64]})
    with django_capture_on_commit_callbacks(execute=True):
        job = render_request_for_merge(model_version_id=output.pk)
    assert job.trigger == "merge" and job.requested_by == alice and enqueued == [job.pk]
    assert (job.spec["prompts"], job.spec["seeds"], job.spec["steps"]) == (["a red chair"], [5, 6], 3)
    # an alpha sweep of that recipe sweeps its weighted_sum's two inputs
    sweep = render_request_create(model_version=output, requested_by=alice, spec={**SMALL, "alphas": [0, 0.5, 1]})
    assert sweep.inputs["checkpoint"]["sha256"] == checkpoint.files.get().sha256
    assert sweep.inputs["secondary"]["sha256"] == other.files.get().sha256
    assert sweep.images_total == 12


def test_an_invalid_recipe_preview_block_gives_a_failed_job_with_the_reason(alice, checkpoint, enqueued):
    other = checkpoint_version(alice, "Tiny Other", seed=3)
    output = checkpoint_version(alice, "Tiny Mix", seed=4)
    # valid for the recipe schema (16 x 16) but more images than a grid may have
    _merge_output(alice, output, {"a": checkpoint.pk, "b": other.pk},
                  {"prompts": [f"p{i}" for i in range(16)], "seeds": list(range(16)), "size": [64, 64]})
    job = render_request_for_merge(model_version_id=output.pk)
    assert job.status == "failed" and enqueued == []
    assert job.error == "invalid preview settings: seeds: 256 images requested; at most 64 per grid"
    flux = make_published_model(alice, "Flux Thing", base_model="Flux.1 D").versions.get()
    assert render_request_for_merge(model_version_id=flux.pk) is None  # logged, never raised
