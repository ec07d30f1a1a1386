"""The embedded default (SQLite, local disk, no Redis) serves the API end to end.

The rest of the suite runs on the production parts, so this one runs a child
process with none of their variables set, as `make run` does.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r'''
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.test.utils import setup_test_environment

assert settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"), settings.DATABASES
assert not settings.REDIS_URL
setup_test_environment()
call_command("migrate", verbosity=0)
call_command("hub_seed_demo", verbosity=0, stdout=open(os.devnull, "w"))

from hub.accounts.models import User
from hub.accounts.services import api_key_create
from hub.catalog.models import Model
from hub.catalog.services import downloads_rollup
from hub.files.storage import blob_storage

key = api_key_create(user=User.objects.get(username="demo"), name="t", scopes=["read", "download"]).plaintext
auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
client = Client()
for _ in range(2):  # the second use reads the key's last_used_at back
    me = client.get("/api/v1/me", **auth)
    assert me.status_code == 200, me.content
items = client.get("/api/v1/models", **auth).json()["items"]
assert {m["name"] for m in items} >= {"Tiny SD1 Base", "Watercolor Style LoRA"}, items
model = Model.objects.get(name="Tiny SD1 Base")
version = model.versions.get()
f = version.files.get()
by_hash = client.get(f"/api/v1/model-versions/by-hash/{f.autov2}", **auth)
assert by_hash.status_code == 200 and by_hash.json()["id"] == version.pk
response = client.get(f"/api/download/models/{version.pk}", **auth)
assert response.status_code == 200, response.content
body = b"".join(response.streaming_content)
response.close()
with blob_storage().open(f.storage_key) as stored:
    assert body == stored.read()
from hub.catalog.models import Download
assert Download.objects.count() == 1, Download.objects.count()
assert downloads_rollup() == 1
print("embedded ok")
'''


def test_embedded_mode_serves_keys_lists_hashes_and_downloads(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "REDIS_URL", "S3_", "DJANGO_SETTINGS_MODULE"))}
    env.update(MERGEWORKS_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="hub.settings")
    result = subprocess.run(
        [sys.executable, "-c", "import os\n" + SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "embedded ok" in result.stdout
