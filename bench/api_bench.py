"""REST API v1 performance check (issue 2, Performance). Not a test: it prints figures and ratios.

    .venv/bin/python bench/api_bench.py [--runs 40] [--reseed] [--no-live]

Seeds 10,000 models, 30,000 versions and 30,000 files into its own PostgreSQL
database (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/mw_bench;
created and migrated if missing, seeded once), then measures twice: in process
through Django's test Client, and over HTTP against a live gunicorn (what a
client sees). Samples are taken in rotation so both sides of a ratio see the
same machine load.

- SQL queries for the models list at limit 10/50/100 (target: at most 6, constant);
- the list's median latency at limit 100 against a floor measured in the same
  run: one SQL query fetching the same rows (the page's models with owner,
  versions and files, joined) plus json.dumps of them (target ratio <= 4);
- by-hash lookup and download redirect median latency against /api/v1/health/live (liveness: cheaper than the old
  health, which also touched the database; /api/v1/health now probes every dependency)
  (target ratio <= 2 each). The download goes through the S3 backend's presigned
  redirect (signing needs no S3 server) and the Redis rate limiter when REDIS_URL is set.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._live import LiveServer as _LiveServer, bench_environ, django_ready  # noqa: E402

# Every request is measured, none refused: the limiter still runs (one Redis round trip).
bench_environ(database="mw_bench", bucket="mergeworks-bench", redis_db=1, data_dir="bench",
              DOWNLOAD_RATE_LIMIT_PER_MINUTE=str(10**9))

N_MODELS = 10_000
VERSIONS_PER_MODEL = 3
N_USERS = 200
TAGS = ["anime", "photorealistic", "style", "character", "landscape", "concept", "celebrity", "clothing",
        "background", "base model", "merge", "lora", "sdxl", "pony", "flux", "portrait"]


def seed(reseed: bool) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from hub.accounts.models import User
    from hub.catalog.models import Download, Model, ModelVersion, Tag
    from hub.files.models import ModelFile
    from hub.files.storage import blob_key

    if reseed:
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE files_modelfile, catalog_download, catalog_modelversion, catalog_model_tags, "
                "catalog_model, catalog_tag, accounts_apikey, accounts_user RESTART IDENTITY CASCADE"
            )
    if Model.objects.count() >= N_MODELS:
        return
    started = time.perf_counter()
    rng = random.Random(2)
    now = timezone.now()
    types = [t for t in Model.Type.values]
    bases = [b for b in ModelVersion.BaseModel.values]
    with transaction.atomic():
        users = User.objects.bulk_create(
            [User(username=f"creator{i:03d}", email=f"c{i}@example.com", password="!") for i in range(N_USERS)]
        )
        tags = Tag.objects.bulk_create([Tag(name=t) for t in TAGS])
        models = Model.objects.bulk_create(
            [
                Model(
                    owner=users[i % N_USERS], name=f"Model {i}", slug=f"model-{i}", type=rng.choice(types),
                    description=f"Seeded model number {i}. " * 3, nsfw=rng.random() < 0.2,
                    visibility=Model.Visibility.PUBLIC if rng.random() < 0.95 else Model.Visibility.PRIVATE,
                    status=Model.Status.PUBLISHED, download_count=rng.randint(0, 100_000),
                    published_at=now - timezone.timedelta(minutes=N_MODELS - i), allow_commercial_use=["Image"],
                )
                for i in range(N_MODELS)
            ],
            batch_size=2000,
        )
        through = Model.tags.through
        through.objects.bulk_create(
            [through(model_id=m.id, tag_id=t.id) for m in models for t in rng.sample(tags, 3)], batch_size=5000
        )
        versions = ModelVersion.objects.bulk_create(
            [
                ModelVersion(
                    model=m, name=f"v{j + 1}", base_model=rng.choice(bases), trained_words=[f"word{j}"],
                    status=ModelVersion.Status.PUBLISHED, download_count=rng.randint(0, 30_000),
                    published_at=m.published_at + timezone.timedelta(seconds=j),
                )
                for m in models
                for j in range(VERSIONS_PER_MODEL)
            ],
            batch_size=2000,
        )
        files = []
        for v in versions:
            sha = "%064x" % rng.getrandbits(256)
            files.append(
                ModelFile(
                    version=v, name=f"{v.model.slug}-{v.name}.safetensors", storage_key=blob_key(sha),
                    size_bytes=rng.randint(10, 7000) * 1024 * 1024, format=ModelFile.Format.SAFETENSOR,
                    precision="fp16", primary=True, sha256=sha, autov1=sha[5:13], autov2=sha[:10],
                    autov3="%064x" % rng.getrandbits(256), crc32="%08x" % rng.getrandbits(32),
                    blake3="%064x" % rng.getrandbits(256), pickle_scan_status=ModelFile.ScanStatus.SUCCESS,
                )
            )
        ModelFile.objects.bulk_create(files, batch_size=2000)
        Download.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"seeded {N_MODELS} models, {len(versions)} versions, {len(files)} files "
          f"in {time.perf_counter() - started:.1f}s")


def interleaved_medians(fns: dict[str, Callable[[], object]], runs: int, warmup: int = 5) -> dict[str, float]:
    """Median wall time (ms) of each callable, sampled in rotation.

    Rotating A, B, C, A, B, C… exposes every measurement to the same moments
    of machine load, so ratios stay meaningful on a busy host.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


class LiveServer(_LiveServer):
    def get(self, path: str, expect: int = 200) -> bytes:
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        body = response.read()
        if response.status != expect:
            raise SystemExit(f"{path} answered {response.status}: {body[:300]!r}")
        return body


def verdict(ratio: float, limit: float) -> str:
    return "OK" if ratio <= limit else "FAIL"


FLOOR_SQL = """
WITH page AS (
    SELECT m.* FROM catalog_model m
    WHERE m.status = 'published' AND m.visibility = 'public'
    ORDER BY m.published_at DESC, m.id DESC
    LIMIT %s
)
SELECT page.id AS m_id, page.name AS m_name, page.description AS m_description, page.type AS m_type,
       page.checkpoint_type AS m_checkpoint_type, page.nsfw AS m_nsfw, page.allow_no_credit AS m_allow_no_credit,
       page.allow_commercial_use AS m_allow_commercial_use, page.allow_derivatives AS m_allow_derivatives,
       page.allow_different_license AS m_allow_different_license, page.visibility AS m_visibility,
       page.status AS m_status, page.download_count AS m_download_count, page.created_at AS m_created_at,
       page.updated_at AS m_updated_at, page.published_at AS m_published_at, u.username AS m_username,
       v.id AS v_id, v.name AS v_name, v.description AS v_description, v.base_model AS v_base_model,
       v.trained_words AS v_trained_words, v.status AS v_status, v.published_at AS v_published_at,
       v.download_count AS v_download_count, v.created_at AS v_created_at, v.updated_at AS v_updated_at,
       f.id AS f_id, f.name AS f_name, f.size_bytes AS f_size_bytes, f.format AS f_format, f.precision AS f_precision,
       f."primary" AS f_primary, f.sha256 AS f_sha256, f.autov1 AS f_autov1, f.autov2 AS f_autov2,
       f.autov3 AS f_autov3, f.crc32 AS f_crc32, f.blake3 AS f_blake3, f.pickle_scan_status AS f_pickle_scan_status,
       f.pickle_scan_message AS f_pickle_scan_message, f.virus_scan_status AS f_virus_scan_status
FROM page
JOIN accounts_user u ON u.id = page.owner_id
LEFT JOIN catalog_modelversion v ON v.model_id = page.id AND v.status = 'published'
LEFT JOIN files_modelfile f ON f.version_id = v.id
ORDER BY page.published_at DESC, page.id DESC, v.created_at DESC, v.id DESC, f."primary" DESC, f.id
"""


def floor_once(limit: int) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(FLOOR_SQL, [limit])
        columns = [c.name for c in cursor.description]
        rows = [dict(zip(columns, row)) for row in cursor.fetchall()]
    return len(json.dumps(rows, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="timed runs per list measurement (small requests x10)")
    parser.add_argument("--reseed", action="store_true", help="truncate and seed again")
    parser.add_argument("--no-live", action="store_true", help="skip the live gunicorn measurement")
    args = parser.parse_args()

    django_ready()
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    setup_test_environment()  # lets the test Client run against this database
    settings.ALLOWED_HOSTS = ["*"]
    seed(args.reseed)

    from hub.catalog.models import Download
    from hub.files.models import ModelFile
    from hub.files.storage import blob_storage

    print(f"database {connection.settings_dict['NAME']} | storage {type(blob_storage()).__name__} | "
          f"rate limiter {'redis' if settings.REDIS_URL else 'django cache'}")
    client = Client()

    def get(url: str, expect: int = 200):
        response = client.get(url)
        if response.status_code != expect:
            raise SystemExit(f"{url} answered {response.status_code}: {response.content[:300]!r}")
        return response

    print("\n== models list: SQL queries per page (target <= 6, constant) ==")
    counts = {}
    for limit in (10, 50, 100):
        with CaptureQueriesContext(connection) as ctx:
            body = get(f"/api/v1/models?limit={limit}").json()
        counts[limit] = len(ctx.captured_queries)
        n_versions = sum(len(m["modelVersions"]) for m in body["items"])
        n_files = sum(len(v["files"]) for m in body["items"] for v in m["modelVersions"])
        print(f"limit={limit:<3}  queries={counts[limit]}  models={len(body['items'])}  versions={n_versions}  "
              f"files={n_files}")
    constant = len(set(counts.values())) == 1
    print(f"-> max {max(counts.values())} queries, constant: {constant}  "
          f"[{'OK' if constant and max(counts.values()) <= 6 else 'FAIL'}]")

    rng = random.Random(5)
    cursor_page2 = get("/api/v1/models?limit=100&sort=Most%20Downloaded").json()["metadata"]["nextCursor"]
    public_files = list(
        ModelFile.objects.filter(version__model__visibility="public", version__model__status="published")
        .values_list("version_id", "sha256", "autov2", "crc32", "blake3")[:2000]
    )

    def some_hash() -> str:
        _vid, sha, autov2, crc32, blake3 = rng.choice(public_files)
        return rng.choice([sha.upper(), autov2, blake3, sha])

    def some_version() -> int:
        return rng.choice(public_files)[0]

    def report(where: str, fetch) -> None:
        print(f"\n== [{where}] models list latency at limit=100 vs floor (target ratio <= 4) ==")
        m = interleaved_medians({
            "floor": lambda: floor_once(100),
            "list": lambda: fetch("/api/v1/models?limit=100"),
            "list2": lambda: fetch(f"/api/v1/models?limit=100&sort=Most%20Downloaded&cursor={cursor_page2}"),
        }, args.runs)
        print(f"floor (1 SQL query + json.dumps)        median {m['floor']:7.2f} ms")
        print(f"GET /api/v1/models?limit=100            median {m['list']:7.2f} ms   ratio {m['list'] / m['floor']:.2f}"
              f"  [{verdict(m['list'] / m['floor'], 4)}]")
        print(f"  page 2 of Most Downloaded (cursor)    median {m['list2']:7.2f} ms   ratio {m['list2'] / m['floor']:.2f}")

        print(f"\n== [{where}] by-hash and download redirect vs /api/v1/health/live (target ratio <= 2) ==")
        m = interleaved_medians({
            "health": lambda: fetch("/api/v1/health/live"),
            "by_hash": lambda: fetch(f"/api/v1/model-versions/by-hash/{some_hash()}"),
            "download": lambda: fetch(f"/api/download/models/{some_version()}", expect=302),
        }, args.runs * 10)
        print(f"GET /api/v1/health/live                     median {m['health']:6.2f} ms")
        for label, key in (("GET /api/v1/model-versions/by-hash/{hash}", "by_hash"),
                           ("GET /api/download/models/{id} (302)", "download")):
            r = m[key] / m["health"]
            print(f"{label:<43} median {m[key]:6.2f} ms   ratio {r:.2f}  [{verdict(r, 2)}]")

    report("in process, Django test Client", get)
    if not args.no_live:
        with LiveServer() as server:
            report("live gunicorn over HTTP keep-alive", server.get)
    print(f"\nDownload rows recorded so far: {Download.objects.count()} (folded by downloads_rollup)")


if __name__ == "__main__":
    main()
