"""The `mergeworks` console script, run as a real process against the live server."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.builders import make_published_model, tiny_safetensors_bytes

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("mergeworks")


@pytest.fixture(autouse=True)
def _no_rate_limit(settings):
    settings.DOWNLOAD_RATE_LIMIT_PER_MINUTE = 0


@pytest.fixture
def cli(tmp_path, live_server):
    """Run `mergeworks ARGS…` in a fresh config dir; returns the CompletedProcess."""
    config_dir = tmp_path / "config"

    def run(*args: str, stdin: str | None = None, endpoint: bool = True, cwd: Path | None = None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MERGEWORKS_")}
        env.update(MERGEWORKS_CONFIG_DIR=str(config_dir), HOME=str(tmp_path))
        # The console script imports `hub` from wherever the venv was installed
        # from; this tree's code is the one under test.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        argv = [str(SCRIPT), *args]
        if endpoint:  # options belong to the (sub)command, so they go last
            argv += ["--endpoint", live_server.url]
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, cwd=cwd or tmp_path,
                              timeout=300)

    run.config_dir = config_dir
    run.live_url = live_server.url
    return run


def key_for(user, scopes=("read", "download", "upload", "run")) -> str:
    from hub.accounts.services import api_key_create

    return api_key_create(user=user, name="cli", scopes=list(scopes)).plaintext


def test_the_cli_never_imports_django():
    code = "import sys, hub.cli.main, hub.cli.download, hub.uploads.client; print('django' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_login_stores_the_key_privately_and_refuses_a_bad_one(cli, alice):
    refused = cli("login", "--token", "mw_0123456789ab_not-a-real-secret")
    assert refused.returncode == 4 and "refused" in refused.stderr
    assert not (cli.config_dir / "config.json").exists()

    key = key_for(alice)
    done = cli("login", stdin=key + "\n")  # piped on stdin, as a script would
    assert done.returncode == 0, done.stderr
    path = cli.config_dir / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.config_dir.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["token"] == key

    me = cli("whoami", "--json", endpoint=False)  # the stored endpoint is used
    assert me.returncode == 0 and json.loads(me.stdout)["username"] == "alice"
    # The stored key belongs to its hub: pointing the CLI elsewhere does not send it.
    elsewhere = cli("whoami", "--endpoint", "http://127.0.0.1:9", endpoint=False)
    assert elsewhere.returncode == 4 and "not logged in" in elsewhere.stderr

    assert cli("logout", endpoint=False).returncode == 0
    assert "token" not in json.loads(path.read_text())


def test_download_resumes_a_part_file_and_verifies_the_sha256(cli, alice, local_storage, live_server, tmp_path):
    from django.core.signals import request_started

    data = tiny_safetensors_bytes(11)
    model = make_published_model(alice, "Resumable", data=data)
    version = model.versions.get()
    ranges: list[str | None] = []

    def record(sender, environ, **kwargs):
        if environ["PATH_INFO"].startswith("/api/download/"):
            ranges.append(environ.get("HTTP_RANGE"))

    request_started.connect(record, weak=False, dispatch_uid="cli-ranges")
    try:
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        part = out_dir / "resumable.safetensors.part"
        part.write_bytes(data[:1000])  # as left by an interrupted run
        done = cli("download", str(version.pk), "-o", str(out_dir))
        assert done.returncode == 0, done.stderr
        assert Path(done.stdout.strip()) == out_dir / "resumable.safetensors"
        assert (out_dir / "resumable.safetensors").read_bytes() == data and not part.exists()
        assert ranges == ["bytes=1000-"]

        # A part that does not belong to the file fails verification and is dropped.
        (out_dir / "resumable.safetensors").unlink()
        part.write_bytes(b"\0" * 1000)
        bad = cli("download", str(version.pk), "-o", str(out_dir))
        assert bad.returncode == 1 and "SHA-256 mismatch" in bad.stderr and not part.exists()
        assert not (out_dir / "resumable.safetensors").exists()
    finally:
        request_started.disconnect(dispatch_uid="cli-ranges")

    # Downloading again over a good copy is a no-op success.
    assert cli("download", str(version.pk), "-o", str(out_dir)).returncode == 0
    assert cli("download", str(version.pk), "-o", str(out_dir)).returncode == 0
    assert (out_dir / "resumable.safetensors").read_bytes() == data


def test_exit_codes_scripts_can_rely_on(cli, alice, bob):
    model = make_published_model(alice, "Hidden", visibility="private")
    version = model.versions.get()
    assert cli("download").returncode == 2  # usage
    assert cli("download", "not a target!").returncode == 2
    assert cli("frobnicate").returncode == 2
    missing = cli("download", "999999")
    assert missing.returncode == 3 and "not found" in missing.stderr
    assert cli("download", str(version.pk)).returncode == 3  # private: hidden, not "forbidden"
    assert cli("info", "alice/hidden").returncode == 3
    assert cli("download", str(version.pk), "--token", key_for(bob)).returncode == 3
    assert cli("download", str(version.pk), "--token", "mw_0123456789ab_wrong").returncode == 4
    assert cli("download", str(version.pk), "--token", key_for(alice, scopes=["read"])).returncode == 4
    owned = cli("download", str(version.pk), "--token", key_for(alice), "--json")
    assert owned.returncode == 0 and json.loads(owned.stdout)["modelVersionId"] == version.pk
    unreachable = cli("search", "--endpoint", "http://127.0.0.1:9", endpoint=False)
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr


@pytest.mark.worker
def test_round_trip_upload_search_download_by_hash(cli, alice, live_worker, tmp_path):
    live_worker()
    data = tiny_safetensors_bytes(21, metadata={"ss_output_name": "roundtrip"})
    sha256 = hashlib.sha256(data).hexdigest()
    source = tmp_path / "round-trip.safetensors"
    source.write_bytes(data)
    assert cli("login", "--token", key_for(alice)).returncode == 0

    up = cli("upload", str(source), "--name", "Round Trip", "--type", "Checkpoint", "--base-model", "SD 1.5",
             "--tag", "cli", "--publish", "--json", endpoint=False)
    assert up.returncode == 0, up.stderr
    uploaded = json.loads(up.stdout)
    assert uploaded["sha256"] == sha256 and uploaded["status"] == "published"

    found = cli("search", "Round Trip", "--json", endpoint=False)
    assert found.returncode == 0, found.stderr
    [hit] = json.loads(found.stdout)["items"]
    assert hit["id"] == uploaded["modelId"] and hit["modelVersions"][0]["id"] == uploaded["modelVersionId"]
    assert "Round Trip" in cli("search", "round", endpoint=False).stdout

    targets = (sha256.upper(), uploaded["modelVersionId"], "alice/round-trip@v1.0", "alice/round-trip")
    for n, target in enumerate(targets):
        out = tmp_path / f"out-{n}"
        out.mkdir()
        got = cli("download", str(target), "-o", str(out), "--json", endpoint=False)
        assert got.returncode == 0, got.stderr
        result = json.loads(got.stdout)
        assert Path(result["path"]).read_bytes() == data and result["sha256"].lower() == sha256

    info = cli("info", sha256, endpoint=False)
    assert info.returncode == 0 and "Round Trip" in info.stdout and sha256.upper() in info.stdout


@pytest.mark.worker
@pytest.mark.slow
def test_recipe_fork_run_and_status(cli, alice, bob, live_worker, tmp_path):
    from merges.registry.services import recipe_create
    from tests.registry.conftest import sd1_document, tiny_checkpoint_bytes

    base = make_published_model(alice, "Tiny Base", data=tiny_checkpoint_bytes(1)).versions.get()
    other = make_published_model(alice, "Tiny Other", data=tiny_checkpoint_bytes(2)).versions.get()
    recipe = recipe_create(owner=alice, title="Mix", source=sd1_document(base.pk, other.pk))
    assert cli("login", "--token", key_for(bob)).returncode == 0

    forked = cli("recipe", "fork", str(recipe.pk), "--title", "Bob's Mix", "--json", endpoint=False)
    assert forked.returncode == 0, forked.stderr
    fork = json.loads(forked.stdout)
    assert fork["owner"]["username"] == "bob" and fork["forkedFrom"]["recipeId"] == recipe.pk
    assert cli("recipe", "fork", "999999", endpoint=False).returncode == 3

    no_run_scope = cli("recipe", "run", str(fork["id"]), "--token", key_for(bob, scopes=["read", "upload"]),
                       endpoint=False)
    assert no_run_scope.returncode == 4

    started = cli("recipe", "run", str(fork["id"]), "--json", endpoint=False)
    assert started.returncode == 0, started.stderr
    job = json.loads(started.stdout)["job"]
    assert job["status"] in ("queued", "running", "succeeded")

    live_worker()
    finished = cli("recipe", "status", str(job["id"]), "--wait", "--timeout", "240", "--json", endpoint=False)
    assert finished.returncode == 0, finished.stderr + finished.stdout
    done = json.loads(finished.stdout)
    assert done["status"] == "succeeded" and done["output"]["modelVersionId"]

    again = cli("recipe", "run", str(fork["id"]), endpoint=False)
    assert again.returncode == 0 and "already merged" in again.stdout
    assert cli("recipe", "status", "999999", endpoint=False).returncode == 3


def test_global_flags_go_before_or_after_the_subcommand(cli, alice):
    make_published_model(alice, "Either Side")
    key = key_for(alice)
    before = cli("--endpoint", cli.live_url, "--token", key, "--json", "search", "either", endpoint=False)
    assert before.returncode == 0, before.stderr
    assert [m["name"] for m in json.loads(before.stdout)["items"]] == ["Either Side"]
    after = cli("search", "either", "--json", "--endpoint", cli.live_url, endpoint=False)
    assert json.loads(after.stdout) == json.loads(before.stdout)
    # One before and one after: both count, and the one after does not reset the one before.
    mixed = cli("--json", "whoami", "--token", key)
    assert mixed.returncode == 0 and json.loads(mixed.stdout)["username"] == "alice"
    nested = cli("--endpoint", cli.live_url, "recipe", "status", "999999", endpoint=False)
    assert nested.returncode == 3, nested.stderr
    # Choices are case-insensitive, before or after.
    typed = cli("search", "--type", "checkpoint", "--base-model", "sd 1.5", "--json")
    assert typed.returncode == 0, typed.stderr and [m["name"] for m in json.loads(typed.stdout)["items"]] == [
        "Either Side"]
    bad = cli("search", "--type", "lorax")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


LORA_METADATA = {
    "ss_network_module": "networks.lora", "ss_network_dim": "4", "ss_network_alpha": "4",
    "ss_base_model_version": "sd_v1", "ss_output_name": "inkwash",
    "ss_tag_frequency": json.dumps({"10_inkwash": {"inkwash": 40, "1girl": 35, "ink wash painting": 30, "solo": 33}}),
}


@pytest.mark.worker
def test_upload_takes_type_base_model_and_trigger_words_from_the_hubs_inspection(cli, alice, live_worker, tmp_path):
    live_worker()
    source = tmp_path / "inkwash.safetensors"
    source.write_bytes(tiny_safetensors_bytes(31, kind="lora", metadata=LORA_METADATA))
    assert cli("login", "--token", key_for(alice)).returncode == 0

    up = cli("upload", str(source), "--name", "Ink Wash", "--publish", "--json", endpoint=False)
    assert up.returncode == 0, up.stderr
    uploaded = json.loads(up.stdout)
    assert "from the hub's inspection" in up.stderr
    model = cli("info", str(uploaded["modelId"]), "--json", endpoint=False)
    found = json.loads(model.stdout)
    [version] = found["modelVersions"]
    assert found["type"] == "LORA" and version["baseModel"] == "SD 1.5"
    assert "inkwash" in version["trainedWords"] and "ink wash painting" in version["trainedWords"]
    assert "1girl" not in version["trainedWords"] and "solo" not in version["trainedWords"]
    shown = cli("info", str(uploaded["modelId"]), endpoint=False)
    assert "trigger words: " in shown.stdout and "inkwash" in shown.stdout
    assert "trigger words: inkwash" in cli("info", "--version", str(version["id"]), endpoint=False).stdout

    # What the user says beats the inspection; --type takes any case, --trained-word repeats.
    again = tmp_path / "inkwash-2.safetensors"
    again.write_bytes(tiny_safetensors_bytes(32, kind="lora", metadata=LORA_METADATA))
    up = cli("upload", str(again), "--name", "Ink Wash Two", "--type", "locon", "--base-model", "sdxl 1.0",
             "--trained-word", "inkwash2", "--trained-word", "ink style", "--json", endpoint=False)
    assert up.returncode == 0, up.stderr
    found = json.loads(cli("info", str(json.loads(up.stdout)["modelId"]), "--json", endpoint=False).stdout)
    [version] = found["modelVersions"]
    assert found["type"] == "LoCon" and version["baseModel"] == "SDXL 1.0"
    assert version["trainedWords"] == ["inkwash2", "ink style"]
