"""Importing diffusers folders, and the relative-name rules for Diffusers-format files."""
from __future__ import annotations

import io
import pickle

import pytest
from django.core.management import call_command

from hub.catalog.services import CatalogError, model_create, model_version_create
from hub.files.models import ModelFile
from hub.files.services import FileRejected, blob_ingest_stream, model_file_create
from hub.hf.selectors import version_commit_id
from hub.hf.services import catalog_import_folder
from tests.hf.test_hub_client import write_fake_diffusers_folder
from tests.support.builders import tiny_safetensors_bytes


def _blob(data: bytes, **kwargs):
    return blob_ingest_stream(reader=io.BytesIO(data), size=len(data), head=data[:16],
                              header_reader=io.BytesIO(data), **kwargs)


@pytest.fixture
def version(alice):
    return model_version_create(model=model_create(owner=alice, name="Names"), name="v1")


@pytest.mark.parametrize("name", ["../escape.json", "unet/../../x.json", "/etc/passwd", "unet\\config.json",
                                  "unet//config.json", "./config.json", "unet/", "bad\nname.json"])
def test_diffusers_names_must_be_clean_relative_paths(version, name):
    with pytest.raises(FileRejected) as refused:
        model_file_create(version=version, blob=_blob(b"{}", format=ModelFile.Format.DIFFUSERS), name=name)
    assert refused.value.code == "bad_name"


def test_relative_paths_only_for_diffusers_files(version):
    kept = model_file_create(version=version, blob=_blob(b"{}", format=ModelFile.Format.DIFFUSERS),
                             name="unet/config.json")
    assert kept.name == "unet/config.json" and kept.pickle_scan_status == "Success"
    # Any other format keeps the old behaviour: only the base name survives.
    flat = model_file_create(version=version, blob=_blob(tiny_safetensors_bytes(1)), name="some/dir/model.safetensors")
    assert flat.name == "model.safetensors" and flat.format == "SafeTensor"


def test_diffusers_members_may_not_be_pickles(db):
    with pytest.raises(FileRejected) as refused:
        _blob(pickle.dumps({"a": 1}, protocol=4), format=ModelFile.Format.DIFFUSERS)
    assert refused.value.code == "pickle_not_allowed"
    with pytest.raises(ValueError):
        _blob(b"{}", format=ModelFile.Format.SAFETENSOR)


def test_folder_import_refuses_pickles_symlinks_and_non_pipelines(alice, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text("{}")
    with pytest.raises(FileRejected, match="model_index.json"):
        catalog_import_folder(path=plain, owner=alice, model_name="x")

    pickled = tmp_path / "pickled"
    write_fake_diffusers_folder(pickled)
    (pickled / "unet" / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps({}))
    with pytest.raises(FileRejected) as refused:
        catalog_import_folder(path=pickled, owner=alice, model_name="x")
    assert refused.value.code == "pickle_not_allowed"

    linked = tmp_path / "linked"
    write_fake_diffusers_folder(linked)
    (linked / "vae").mkdir()
    (linked / "vae" / "config.json").symlink_to("/etc/hostname")
    with pytest.raises(FileRejected) as refused:
        catalog_import_folder(path=linked, owner=alice, model_name="x")
    assert refused.value.code == "symlink"

    disguised = tmp_path / "disguised"
    write_fake_diffusers_folder(disguised)
    (disguised / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(pickle.dumps({}, protocol=4))
    with pytest.raises(FileRejected):
        catalog_import_folder(path=disguised, owner=alice, model_name="x")
    assert not alice.models.exists()  # nothing half-imported


def test_folder_import_skips_hidden_files_and_keeps_versions_immutable(alice, tmp_path):
    folder = tmp_path / "pipe"
    files = write_fake_diffusers_folder(folder)
    (folder / ".cache").mkdir()
    (folder / ".cache" / "junk").write_text("x")
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs")
    result = catalog_import_folder(path=folder, owner=alice, model_name="Pipe")
    assert sorted(f.name for f in result.files) == sorted(files)
    assert [f.name for f in result.files if f.primary] == ["model_index.json"]
    weights = next(f for f in result.files if f.name.endswith(".safetensors"))
    assert weights.header_summary["tensor_count"] > 0  # validated as safetensors, stored as Diffusers
    with pytest.raises(CatalogError):
        catalog_import_folder(path=folder, owner=alice, model_name="Pipe")
    second = catalog_import_folder(path=folder, owner=alice, model_name="Pipe", version_name="v2")
    # Same files, same commit id: the id is a digest of the file set.
    assert version_commit_id(second.version) == version_commit_id(result.version)


def test_import_command(alice, tmp_path):
    folder = tmp_path / "pipe"
    write_fake_diffusers_folder(folder)
    out = io.StringIO()
    call_command("hub_import_folder", str(folder), "--owner", "alice", "--model", "cmd-pipe", stdout=out)
    text = out.getvalue()
    assert "imported 6 files" in text and "repo alice/cmd-pipe" in text and "commit " in text
