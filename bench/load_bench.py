"""Load check (issue 19 §4): throughput and p99 under many connections. Not a test: it prints figures and ratios.

    bash infra/scripts/services-up.sh   # PostgreSQL, Redis, moto S3
    apt-get install -y wrk              # the load generator
    .venv/bin/python bench/load_bench.py [--duration 10] [--connections 32,128]

Seeds the catalogue of bench/api_bench.py (10,000 models, 30,000 versions and
files; 95% public) into its own PostgreSQL database (DATABASE_URL, default
mw_loadbench; created, migrated and seeded once), starts gunicorn as
deployed (2 workers × 4 threads, gthread, keep-alive) on loopback over
PostgreSQL, Redis and S3 (moto), and drives it with wrk for `--duration`
seconds per endpoint and connection count:

- health           GET /api/v1/health/live, the liveness route (the baseline of every ratio;
                   /api/v1/health is now a readiness check that probes every dependency)
- list (anon)      GET /api/v1/models?limit=20
- list (API key)   the same with an API key (read scope)
- by-hash          GET /api/v1/model-versions/by-hash/{hash}, over 2,000 hashes
- download         GET /api/download/models/{id} (302 to a presigned URL; counted)

It prints requests/s, p99 and the ratio to health's requests/s at each
connection count. Targets at 128 connections: anonymous list ≥ 0.50 of
health's throughput with p99 ≤ 300 ms; authenticated list ≥ 0.30.
"""
from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._live import bench_environ, django_ready, ensure_bucket, free_port, start_gunicorn  # noqa: E402
from bench._live import stop, wait_until_healthy  # noqa: E402

# Every request is served, none refused: the limiter still runs (one Redis round trip).
bench_environ(database="mw_loadbench", bucket="mergeworks-loadbench", redis_db=1, data_dir="loadbench",
              DOWNLOAD_RATE_LIMIT_PER_MINUTE=str(10**9))

from bench.api_bench import seed  # noqa: E402  (after this bench's environment: it defaults its own)

TARGETS = {"list (anon)": (0.50, 300.0), "list (API key)": (0.30, None)}

_LUA = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1], {%s})
end
"""


def _lua_script(work: Path, name: str, paths: list[str], headers: dict[str, str]) -> Path:
    quoted = ",".join(f'"{p}"' for p in paths)
    header_lua = ",".join(f'["{k}"]="{v}"' for k, v in headers.items())
    path = work / f"{name}.lua"
    path.write_text(_LUA % (quoted, header_lua))
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def run_wrk(url: str, script: Path, connections: int, duration: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = _ms(re.search(r"\n\s+99%\s+(\S+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p99": p99, "bad": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", default="32,128", help="comma-separated connection counts")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    django_ready()
    seed(False)
    from hub.accounts.models import User
    from hub.accounts.services import api_key_create
    from hub.files.models import ModelFile

    ensure_bucket()
    user = User.objects.filter(username="creator001").get()
    token = api_key_create(user=user, name=f"loadbench-{time.time_ns()}", scopes=["read", "download"]).plaintext
    rng = random.Random(7)
    public = list(ModelFile.objects.filter(version__model__visibility="public", version__model__status="published")
                  .values_list("version_id", "sha256", "autov2")[:2000])
    hashes = [rng.choice([sha, autov2, sha.upper()]) for _vid, sha, autov2 in public]

    work = Path(tempfile.mkdtemp(prefix="loadbench-"))
    endpoints = {
        "health": _lua_script(work, "health", ["/api/v1/health/live"], {}),
        "list (anon)": _lua_script(work, "list", ["/api/v1/models?limit=20"], {}),
        "list (API key)": _lua_script(work, "list_key", ["/api/v1/models?limit=20"],
                                      {"Authorization": f"Bearer {token}"}),
        "by-hash": _lua_script(work, "by_hash", [f"/api/v1/model-versions/by-hash/{h}" for h in hashes], {}),
        "download": _lua_script(work, "download", [f"/api/download/models/{vid}" for vid, _s, _a in public], {}),
    }
    port = free_port()
    server = start_gunicorn(port, "--worker-class", "gthread", "--workers", "2", "--threads", "4",
                            "--keep-alive", "30", "--backlog", "2048", "--log-level", "warning")
    results: dict[int, dict[str, dict]] = {}
    try:
        wait_until_healthy(port)
        url = f"http://127.0.0.1:{port}"
        for script in endpoints.values():  # warm every path (imports, connections, caches)
            run_wrk(url, script, 8, 1)
        for connections in [int(c) for c in args.connections.split(",")]:
            results[connections] = {}
            for name, script in endpoints.items():
                results[connections][name] = run_wrk(url, script, connections, args.duration)
                r = results[connections][name]
                print(f"  {connections:>4} conns  {name:<15} {r['rps']:8.0f} req/s  p99 {r['p99']:8.1f} ms"
                      + (f"  non-2xx/3xx {r['bad']}" if r["bad"] else "")
                      + (f"  socket errors: {r['socket_errors']}" if r["socket_errors"] else ""), flush=True)
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)

    print(f"\ngunicorn 2 workers × 4 threads on loopback; PostgreSQL, Redis, S3 (moto); wrk {args.duration} s per run")
    print(f"{'conns':>5}  {'endpoint':<15} {'req/s':>8} {'p99 ms':>8} {'÷ health':>9}")
    missed = 0
    for connections, rows in results.items():
        health = rows["health"]["rps"]
        for name, r in rows.items():
            ratio = r["rps"] / health
            mark = ""
            if connections == 128 and name in TARGETS:
                min_ratio, max_p99 = TARGETS[name]
                ok = ratio >= min_ratio and r["bad"] == 0 and (max_p99 is None or r["p99"] <= max_p99)
                missed += not ok
                goal = f"≥ {min_ratio:.2f}" + (f", p99 ≤ {max_p99:.0f} ms" if max_p99 else "")
                mark = f"  (target {goal})  {'OK' if ok else 'MISSED'}"
            print(f"{connections:>5}  {name:<15} {r['rps']:8.0f} {r['p99']:8.1f} {ratio:9.2f}{mark}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
