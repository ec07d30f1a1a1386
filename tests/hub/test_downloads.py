"""Downloads on both storage backends: S3 (moto over HTTP, presigned redirect) and local disk (streamed with Range)."""
from __future__ import annotations

import hashlib
import time
import uuid

import pytest
import requests

from hub.accounts.services import api_key_create, api_key_revoke
from hub.catalog.models import Download
from hub.catalog.download_events import PENDING_KEY, download_events_flush
from hub.catalog.services import downloads_rollup
from tests.support.builders import make_published_model, tiny_safetensors_bytes


@pytest.fixture(autouse=True)
def _generous_rate_limit(settings):
    settings.DOWNLOAD_RATE_LIMIT_PER_MINUTE = 100_000


def _version(model):
    return model.versions.get()


def _file(model):
    return _version(model).files.get()


def _url(model, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/api/download/models/{_version(model).id}" + (f"?{query}" if query else "")


def _assert_json_error(response, status: int, code: str | None = None):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status and body["error"]
    if code:
        assert body["code"] == code
    assert "attachment" not in response.get("Content-Disposition", "")


# --- S3 ---------------------------------------------------------------------------

def test_s3_download_redirects_to_presigned_url_with_the_stored_bytes(client, alice):
    data = tiny_safetensors_bytes(11)
    model = make_published_model(alice, "S3 Model", data=data, file_name="s3-model.safetensors")
    response = client.get(_url(model))
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("http://") and "Signature=" in location
    fetched = requests.get(location, timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == data
    assert 'filename="s3-model.safetensors"' in fetched.headers["Content-Disposition"]
    assert _recorded(version=_version(model)) == 1


def test_s3_presigned_url_is_what_boto3_signs(settings):
    """The fast path signs exactly the URL boto3's generate_presigned_url gives (SigV4, path style)."""
    import datetime
    from unittest import mock

    import boto3
    import botocore.auth
    from botocore.client import Config

    from hub.files.storage import blob_storage

    storage = blob_storage()
    options = settings.STORAGES["blobs"]["OPTIONS"]
    reference = boto3.session.Session().client(
        "s3", endpoint_url=options["public_endpoint_url"], aws_access_key_id=options["access_key"],
        aws_secret_access_key=options["secret_key"], region_name=options["region_name"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    key = "blobs/sha256/ab/odd name+é~.safetensors"
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=datetime.datetime(2026, 11, 28, 12)):
        ours = storage.download_url(key, 'my "file" é.safetensors', expires=120)
        theirs = reference.generate_presigned_url("get_object", Params={
            "Bucket": storage.bucket_name, "Key": storage._key(key),
            "ResponseContentDisposition": 'attachment; filename="my file é.safetensors"',
            "ResponseContentType": "application/octet-stream",
        }, ExpiresIn=120)
    assert ours == theirs


def test_s3_presigned_url_honours_range(client, alice):
    data = tiny_safetensors_bytes(12)
    model = make_published_model(alice, "S3 Range", data=data)
    location = client.get(_url(model))["Location"]
    fetched = requests.get(location, headers={"Range": "bytes=100-199"}, timeout=10)
    assert fetched.status_code == 206
    assert fetched.content == data[100:200]


# --- local disk -----------------------------------------------------------------------

def test_local_download_streams_whole_file_with_validators(client, alice, local_storage):
    data = tiny_safetensors_bytes(13)
    model = make_published_model(alice, "Local Model", data=data, file_name="local.safetensors")
    response = client.get(_url(model))
    assert response.status_code == 200
    assert response.streaming
    body = b"".join(response.streaming_content)
    assert body == data
    assert response["Content-Length"] == str(len(data))
    assert response["Accept-Ranges"] == "bytes"
    assert response["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert response["Content-Disposition"] == 'attachment; filename="local.safetensors"'
    assert response["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-99", 0, 99), ("bytes=100-", 100, None), ("bytes=-50", -50, None), ("bytes=10-10", 10, 10)],
)
def test_local_range_returns_exactly_that_range(client, alice, local_storage, header, start, end):
    data = tiny_safetensors_bytes(14)
    model = make_published_model(alice, "Local Range", data=data)
    response = client.get(_url(model), HTTP_RANGE=header)
    assert response.status_code == 206
    expected = data[start:] if end is None else data[start : end + 1]
    assert b"".join(response.streaming_content) == expected
    first = start if start >= 0 else len(data) + start
    assert response["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert response["Content-Length"] == str(len(expected))


def test_local_unsatisfiable_range_is_416_json(client, alice, local_storage):
    data = tiny_safetensors_bytes(15)
    model = make_published_model(alice, "Local 416", data=data)
    response = client.get(_url(model), HTTP_RANGE=f"bytes={len(data)}-")
    _assert_json_error(response, 416, "range_not_satisfiable")
    assert response["Content-Range"] == f"bytes */{len(data)}"


def test_local_if_none_match_and_if_range(client, alice, local_storage):
    data = tiny_safetensors_bytes(16)
    model = make_published_model(alice, "Local Cond", data=data)
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    not_modified = client.get(_url(model), HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    resumed = client.get(_url(model), HTTP_RANGE="bytes=5-9", HTTP_IF_RANGE=etag)
    assert resumed.status_code == 206
    assert b"".join(resumed.streaming_content) == data[5:10]
    changed = client.get(_url(model), HTTP_RANGE="bytes=5-9", HTTP_IF_RANGE='"0000"')
    assert changed.status_code == 200
    assert b"".join(changed.streaming_content) == data


def test_head_sends_headers_only_and_is_not_counted(client, alice, local_storage):
    data = tiny_safetensors_bytes(17)
    model = make_published_model(alice, "Local Head", data=data)
    response = client.head(_url(model))
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(data))
    assert response.content == b""
    assert _recorded() == 0


# --- counting ---------------------------------------------------------------------------

def _recorded(**filters) -> int:
    """Download rows, once the pending events (queued in Redis) are written."""
    download_events_flush().release()
    return Download.objects.filter(**filters).count()


def test_download_events_wait_in_redis_until_the_rollup(client, alice, local_storage):
    from hub.redis_conn import redis_client

    model = make_published_model(alice, "Queued")
    gone = make_published_model(alice, "Deleted soon")
    for n, m in enumerate((model, model, gone)):  # three clients: one download each
        b"".join(client.get(_url(m), REMOTE_ADDR=f"10.0.0.{n}").streaming_content)
    assert not Download.objects.filter(version__model__in=[model, gone]).exists()
    deadline = time.monotonic() + 5  # the process's outbox sends in the background, in batches
    while redis_client().llen(PENDING_KEY) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert redis_client().llen(PENDING_KEY) >= 3
    _version(gone).delete()  # its pending event is dropped, not an error
    # A claim left behind by a crashed rollup is picked up too.
    redis_client().rpush("mw:downloads:claimed:leftover", f"{_version(model).pk},,,{1_700_000_000.5}")
    assert downloads_rollup() == 3
    model.refresh_from_db()
    assert model.download_count == 3
    assert redis_client().llen(PENDING_KEY) == 0 and not redis_client().exists("mw:downloads:claimed:leftover")
    stamps = sorted(Download.objects.filter(version=_version(model)).values_list("created_at", flat=True))
    assert stamps[0].timestamp() == 1_700_000_000.5  # the event's own time, not the rollup's


def test_downloads_are_counted_as_rows_and_rolled_up(client, alice, local_storage):
    model = make_published_model(alice, "Counted")
    first = client.get(_url(model))
    assert _recorded() == 0  # counted once served, not before
    b"".join(first.streaming_content)
    assert _recorded() == 1
    for address in ("10.0.0.1", "10.0.0.2"):
        b"".join(client.get(_url(model), REMOTE_ADDR=address).streaming_content)
    assert _recorded(version=_version(model)) == 3
    assert downloads_rollup() == 3
    model.refresh_from_db()
    assert model.download_count == 3
    assert _version(model).download_count == 3


@pytest.mark.parametrize("again", [None, "bytes=10-", "bytes=-100", "bytes=1-1,0-"])
def test_a_client_counts_once_per_file_within_the_window(client, alice, local_storage, again):
    """Resuming, or fetching again, is the same download; another client's is not."""
    model = make_published_model(alice, "Once")
    b"".join(client.get(_url(model)).streaming_content)
    extra = {"HTTP_RANGE": again} if again else {}
    b"".join(client.get(_url(model), **extra).streaming_content)
    assert _recorded(version=_version(model)) == 1
    b"".join(client.get(_url(model), REMOTE_ADDR="10.9.9.9", **extra).streaming_content)
    assert _recorded(version=_version(model)) == 2


# --- access -------------------------------------------------------------------------------

def test_private_model_is_404_to_others_and_served_to_owner(client, alice, bob):
    model = make_published_model(alice, "Secret", visibility="private")
    _assert_json_error(client.get(_url(model)), 404, "not_found")
    client.force_login(bob)
    _assert_json_error(client.get(_url(model)), 404, "not_found")
    client.force_login(alice)
    assert client.get(_url(model)).status_code == 302


def test_bearer_and_query_token_keys(client, alice, bob):
    model = make_published_model(alice, "Keyed", visibility="private")
    key = api_key_create(user=alice, name="dl", scopes=["download"]).plaintext
    assert client.get(_url(model), HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 302
    assert client.get(_url(model, token=key)).status_code == 302
    other = api_key_create(user=bob, name="dl", scopes=["download"]).plaintext
    _assert_json_error(client.get(_url(model), HTTP_AUTHORIZATION=f"Bearer {other}"), 404)


def test_key_without_download_scope_is_403(client, alice):
    model = make_published_model(alice, "Scoped")
    key = api_key_create(user=alice, name="ro", scopes=["read"]).plaintext
    _assert_json_error(client.get(_url(model), HTTP_AUTHORIZATION=f"Bearer {key}"), 403, "permission_denied")


def test_revoked_or_unknown_key_is_401(client, alice):
    model = make_published_model(alice, "Revoked")
    issued = api_key_create(user=alice, name="old", scopes=["download"])
    api_key_revoke(api_key=issued.api_key)
    response = client.get(_url(model, token=issued.plaintext))
    _assert_json_error(response, 401)
    assert "revoked" in response.json()["error"]
    _assert_json_error(client.get(_url(model), HTTP_AUTHORIZATION="Bearer mw_nothing_here"), 401)


def test_unknown_version_and_file_are_404_json(client, alice):
    model = make_published_model(alice, "Known")
    _assert_json_error(client.get("/api/download/models/999999999"), 404, "not_found")
    _assert_json_error(client.get(_url(model, fileId=999999999)), 404, "file_not_found")
    _assert_json_error(client.get(_url(model, fp="fp32")), 404, "file_not_found")
    _assert_json_error(client.get(_url(model, fileId="abc")), 400, "invalid")


def test_draft_version_is_404_to_others(client, alice, bob):
    model = make_published_model(alice, "Drafty", publish=False)
    client.force_login(bob)
    _assert_json_error(client.get(_url(model)), 404)
    client.force_login(alice)
    assert client.get(_url(model)).status_code == 302


def test_archived_model_is_410(client, alice):
    model = make_published_model(alice, "Old")
    model.status = "archived"
    model.save(update_fields=["status"])
    _assert_json_error(client.get(_url(model)), 410, "archived")


def test_file_selection_by_id_format_and_fp(client, alice, local_storage):
    import io

    from hub.files.services import blob_ingest_stream, model_file_create

    model = make_published_model(alice, "Two Files", data=tiny_safetensors_bytes(20))
    version = _version(model)
    extra = tiny_safetensors_bytes(21)
    blob = blob_ingest_stream(reader=io.BytesIO(extra), size=len(extra), head=extra[:16], header_reader=io.BytesIO(extra))
    second = model_file_create(version=version, blob=blob, name="second.safetensors")
    response = client.get(_url(model, fileId=second.id))
    assert b"".join(response.streaming_content) == extra
    primary = client.get(_url(model, format="safetensor", fp="FP16"))
    assert primary.status_code == 200, (primary.json(), list(version.files.values("precision", "format")))
    assert b"".join(primary.streaming_content) == tiny_safetensors_bytes(20)


def test_rate_limit_answers_429_with_retry_after(client, alice, settings):
    settings.DOWNLOAD_RATE_LIMIT_PER_MINUTE = 2
    model = make_published_model(alice, "Limited")
    ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    for _ in range(2):
        assert client.get(_url(model), REMOTE_ADDR=ip).status_code == 302
    response = client.get(_url(model), REMOTE_ADDR=ip)
    _assert_json_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 61


def test_the_outbox_keeps_a_bounded_backlog_while_redis_is_away(monkeypatch):
    from hub.catalog import download_events

    class Down:
        def rpush(self, *args):
            raise ConnectionError("redis is away")

    class Up:
        def __init__(self):
            self.batches = []

        def rpush(self, key, *events):
            self.batches.append(events)

    outbox = download_events._Outbox()
    monkeypatch.setattr(outbox, "MAX_KEPT", 5)
    monkeypatch.setattr(outbox, "BATCH", 2)
    monkeypatch.setattr(download_events, "redis_client", lambda: Down())
    with outbox._lock:  # no background thread: this test sends by hand
        outbox._thread = object()
    for i in range(8):
        outbox.add(f"e{i}")
    outbox.send()
    assert outbox._events == ["e3", "e4", "e5", "e6", "e7"] and outbox._dropped == 3  # the oldest went
    up = Up()
    monkeypatch.setattr(download_events, "redis_client", lambda: up)
    outbox.send()
    assert up.batches == [("e3", "e4"), ("e5", "e6"), ("e7",)] and outbox._events == []
