"""Shared counters, the client address behind proxies, and the write limit."""
from __future__ import annotations

import multiprocessing
import re
from pathlib import Path

from django.test import RequestFactory

from hub.limits import _SqliteCounters, client_ip, counter_incr, mark_once

ROOT = Path(__file__).resolve().parents[2]


def _request(remote: str, forwarded: str | None = None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **extra)


def test_without_trusted_proxies_the_claim_is_ignored(settings):
    settings.TRUSTED_PROXIES, settings.TRUSTED_PROXY_HOPS = [], 0
    assert client_ip(_request("203.0.113.5", "10.9.1.1")) == "203.0.113.5"


def test_trusted_proxies_are_walked_from_the_right(settings):
    settings.TRUSTED_PROXIES, settings.TRUSTED_PROXY_HOPS = ["10.0.0.0/8", "127.0.0.1/32"], 0
    # The client's own claim (left) is never believed: the first untrusted address from the right is.
    assert client_ip(_request("10.0.0.2", "6.6.6.6, 203.0.113.5, 10.0.0.7")) == "203.0.113.5"
    assert client_ip(_request("10.0.0.2", "203.0.113.5")) == "203.0.113.5"
    # Not from a trusted proxy: the header is the client's claim.
    assert client_ip(_request("198.51.100.9", "203.0.113.5")) == "198.51.100.9"
    assert client_ip(_request("10.0.0.2", "not-an-address")) == "10.0.0.2"
    assert client_ip(_request("10.0.0.2", "[2001:db8::1]:443")) == "2001:db8::1"


def test_a_number_of_hops(settings):
    settings.TRUSTED_PROXIES, settings.TRUSTED_PROXY_HOPS = [], 1
    assert client_ip(_request("172.18.0.5", "203.0.113.5")) == "203.0.113.5"
    assert client_ip(_request("172.18.0.5", "10.9.1.1, 203.0.113.5")) == "203.0.113.5"
    assert client_ip(_request("172.18.0.5")) == "172.18.0.5"


def test_the_shipped_proxy_and_settings_agree():
    """nginx replaces X-Forwarded-For with the address it sees, and the example env trusts exactly that one hop."""
    nginx = (ROOT / "infra" / "proxy" / "nginx.conf").read_text()
    env = (ROOT / "infra" / "env.example").read_text()
    assert re.search(r"^\s*proxy_set_header X-Forwarded-For \$remote_addr;", nginx, re.M)
    assert re.search(r"^TRUSTED_PROXY_HOPS=1$", env, re.M)
    assert not re.search(r"^TRUSTED_PROXIES=", env, re.M)


def test_redis_counters_and_marks(settings):
    assert [counter_incr("t:a", ttl=30) for _ in range(3)] == [1, 2, 3]
    assert mark_once("t:m", ttl=30) is True
    assert mark_once("t:m", ttl=30) is False


def _hammer(path: str, n: int, out) -> None:
    store = _SqliteCounters(Path(path))
    out.put([store.incr("k", 60) for _ in range(n)])


def test_the_embedded_counter_is_shared_by_processes(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path / "limits.sqlite3"), 50, out)) for _ in range(3)]
    for p in procs:
        p.start()
    values = sorted(v for _ in procs for v in out.get(timeout=60))
    for p in procs:
        p.join(timeout=30)
    assert values == list(range(1, 151))  # every increment seen once, none lost


def test_the_embedded_counter_expires_and_marks(tmp_path):
    store = _SqliteCounters(tmp_path / "limits.sqlite3")
    assert store.incr("k", 0) == 1
    assert store.incr("k", 0) == 1  # expired: starts again
    assert store.add("m", 60) is True and store.add("m", 60) is False
    assert store.add("gone", -1) is True and store.add("gone", 60) is True


def test_embedded_mode_limits_downloads_without_redis(settings, client, alice, local_storage, monkeypatch, tmp_path):
    from tests.support.builders import make_published_model

    monkeypatch.setattr("hub.limits.redis_client", lambda: None)
    settings.LIMITS_DB_PATH = str(tmp_path / "limits.sqlite3")
    settings.DOWNLOAD_RATE_LIMIT_PER_MINUTE = 2
    model = make_published_model(alice, "Embedded Limit")
    url = f"/api/download/models/{model.versions.get().pk}"
    assert [client.get(url).status_code for _ in range(2)] == [200, 200]
    assert client.get(url, HTTP_RANGE="bytes=-10").status_code == 429


def test_api_writes_are_limited_per_user(settings, api_client, alice):
    from hub.accounts.services import api_key_create

    settings.WRITE_RATE_LIMIT_PER_MINUTE = 2
    key = api_key_create(user=alice, name="w", scopes=["read", "upload"]).plaintext
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    statuses = [api_client.post("/api/v1/uploads", {"filename": "x.txt", "size": 1}, format="json").status_code
                for _ in range(3)]
    assert statuses[:2] == [400, 400] and statuses[2] == 429
    refused = api_client.post("/api/v1/uploads", {"filename": "x.txt", "size": 1}, format="json")
    assert refused.json()["code"] == "rate_limited" and int(refused["Retry-After"]) >= 1
    # Reads are not writes; a bulk hash lookup is a read sent as a POST.
    assert api_client.get("/api/v1/uploads").status_code == 200
    assert api_client.post("/api/v1/model-versions/by-hash", ["0" * 64], format="json").status_code == 200
