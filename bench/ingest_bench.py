"""Ingest and upload benchmarks for the upload pipeline (issue 4). Prints figures and ratios.

    .venv/bin/python bench/ingest_bench.py [--dir /var/tmp] [--runs 3] [--keep]

1. Ingest: a real-layout SD1.5 fp16 checkpoint (the 1,130 keys of sd-mecha's
   `sd1-ldm` list, about 2.13 GB) is read once by `file_stream_verify`, the
   ingest worker's pass (all six hashes, strict header validation, the
   engine's inspect), against `sha256sum` on the same file in the same run.
   Both read from the page cache (the file is read once before timing) and
   run alternately; medians are compared. Peak RSS is the ingest process's.
   Targets: time ratio <= 1.5, peak RSS <= 256 MB.
2. Upload: the same file sent to a hub (gunicorn, embedded SQLite, local-disk
   storage) with the protocol's own client (`hub.uploads.client`, 4 parts in
   flight), once computing the SHA-256 alongside as it does by default and
   once with the SHA-256 already known, against `cp` of the file into the
   same store directory (each timing after a `sync`, medians of the runs).
   Target: at least 50% of cp's throughput. The full
   ingest service (`upload_ingest`: verify, promote by hard link) then runs
   on the uploaded file and is timed too.

Big files are deleted at the end unless --keep.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
sys.path.insert(0, str(ROOT))

from bench._live import embedded_env as _env  # noqa: E402
from bench._live import free_port, scratch_dir, start_gunicorn, stop as stop_process, wait_until_healthy  # noqa: E402

_DTYPES = {"float32": ("F16", 2), "float16": ("F16", 2), "int64": ("I64", 8)}


def sd1_layout() -> list[tuple[str, str, list[int]]]:
    import importlib.util

    # Locate the package without importing it (it imports torch).
    spec = importlib.util.find_spec("sd_mecha")
    package = Path(next(iter(spec.submodule_search_locations)))
    path = package / "extensions" / "builtin" / "model_configs" / "sd1-ldm.yaml"
    # What a pruned fp16 SD1.5 checkpoint holds: text encoder, VAE and UNet
    # (not the EMA copy or the scheduler buffers), without optional keys.
    keep = {"clip_l", "vae", "diffuser"}
    pattern = re.compile(r"^    ([^\s:]+): \{shape: \[([^\]]*)\], dtype: (\w+)(.*)$")
    out, component = [], None
    for line in path.read_text().splitlines():
        if re.match(r"^  (\w+):$", line):
            component = line.strip().rstrip(":")
            continue
        m = pattern.match(line)
        if m and component in keep and "optional: true" not in m.group(4):
            name, shape, dtype = m.group(1), m.group(2), m.group(3)
            st_dtype, _ = _DTYPES.get(dtype, ("F16", 2))
            out.append((name, st_dtype, [int(d) for d in shape.split(",") if d.strip()]))
    return out


def write_checkpoint(path: Path) -> int:
    """Write an SD1.5-shaped fp16 safetensors file; returns its size."""
    import math

    sizes = {"F16": 2, "I64": 8}
    header: dict = {"__metadata__": {"format": "pt", "modelspec.title": "bench checkpoint"}}
    offset = 0
    layout = sd1_layout()
    for name, dtype, shape in layout:
        n = math.prod(shape) * sizes[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    block = os.urandom(64 * 1024 * 1024)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        left = offset
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
    print(f"wrote {path} ({len(layout)} tensors, {path.stat().st_size / 1e9:.2f} GB)")
    return path.stat().st_size


# Peak RSS is read from VmHWM: unlike getrusage's ru_maxrss, which Linux
# carries across exec from the parent, it covers this process image only.
PEAK_RSS = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) // 1024"

INGEST_SNIPPET = r"""
import json, os, sys, time
import django
django.setup()
from hub.files.scanning import file_stream_verify
path = sys.argv[1]
size = os.path.getsize(path)
t = time.perf_counter()
with open(path, "rb", buffering=0) as f:
    result = file_stream_verify(f, size=size)
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "peak_rss_mb": PEAK_RSS,
                  "sha256": result.hashes["sha256"], "kind": result.header_summary["inspect"]["kind"],
                  "architecture": result.header_summary["inspect"]["architecture"]}))
""".replace("PEAK_RSS", PEAK_RSS)


def bench_ingest(path: Path, runs: int, data_dir: Path) -> dict:
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    sha_times, ingest_times, rss, openssl_times = [], [], [], []
    digest = None
    openssl = shutil.which("openssl")
    for _ in range(runs):
        if openssl:
            # Reference only: OpenSSL uses the CPU's SHA extensions, coreutils' sha256sum may not.
            t = time.perf_counter()
            subprocess.run([openssl, "dgst", "-sha256", str(path)], capture_output=True, check=True)
            openssl_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout
        sha_times.append(time.perf_counter() - t)
        digest = out.split()[0]
        result = json.loads(subprocess.run(
            [PY, "-c", INGEST_SNIPPET, str(path)], capture_output=True, text=True, check=True, env=_env(data_dir),
        ).stdout.strip().splitlines()[-1])
        assert result["sha256"] == digest, "ingest and sha256sum disagree"
        ingest_times.append(result["seconds"])
        rss.append(result["peak_rss_mb"])
    sha, ing = statistics.median(sha_times), statistics.median(ingest_times)
    size = path.stat().st_size
    print(f"\n== Ingest ({size / 1e9:.2f} GB, {result['kind']} {result['architecture']}, median of {runs}) ==")
    print(f"sha256sum              {sha:7.2f} s  {size / sha / 1e6:8.0f} MB/s   runs: {', '.join(f'{x:.2f}' for x in sha_times)}")
    print(f"ingest (6 hashes+check){ing:7.2f} s  {size / ing / 1e6:8.0f} MB/s   runs: {', '.join(f'{x:.2f}' for x in ingest_times)}")
    print(f"time ratio ingest/sha256sum = {ing / sha:.2f}  (target <= 1.5)")
    if openssl_times:
        ref = statistics.median(openssl_times)
        print(f"(reference: openssl dgst -sha256 {ref:.2f} s; ingest/openssl = {ing / ref:.2f})")
    print(f"peak RSS of the ingest process = {max(rss):.0f} MB  (target <= 256)")
    return {"ingest_s": ing, "sha256sum_s": sha, "ratio": ing / sha, "peak_rss_mb": max(rss)}


def _manage(data_dir: Path, *args: str) -> str:
    return subprocess.run([PY, str(ROOT / "manage.py"), *args], capture_output=True, text=True, check=True,
                          env=_env(data_dir), cwd=ROOT).stdout


def bench_upload(path: Path, data_dir: Path, runs: int, parallel: int = 4) -> dict:
    import psutil

    from hub.uploads.client import UploadClient, file_sha256

    size = path.stat().st_size
    _manage(data_dir, "migrate", "--noinput", "-v", "0")
    token = _manage(data_dir, "shell", "-c", (
        "from hub.accounts.services import user_create, api_key_create;"
        "u = user_create(username='bench', password='bench-password-1');"
        "print(api_key_create(user=u, name='bench', scopes=['read', 'upload']).plaintext)"
    )).strip().splitlines()[-1]
    port = free_port()
    server = start_gunicorn(port, "-w", "4", "-k", "gthread", "--threads", "2", "--timeout", "600",
                            "--log-level", "warning", app="hub.wsgi", env=_env(data_dir))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(port)
        peak = {"rss": 0.0}
        stop = threading.Event()

        def sample() -> None:
            proc = psutil.Process(server.pid)
            while not stop.is_set():
                try:
                    for child in proc.children():
                        peak["rss"] = max(peak["rss"], child.memory_info().rss / 2**20)
                except psutil.Error:
                    pass  # a worker exited between listing and reading
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        client = UploadClient(base, token, parallel=parallel)
        copy = data_dir / "store" / "cp-baseline"
        copy.parent.mkdir(parents=True, exist_ok=True)
        cp_times, up_times, known_times = [], [], []
        sha256 = file_sha256(path)
        for i in range(runs):
            # Each timing starts with no dirty pages, so neither pays for the other's writeback.
            subprocess.run(["sync"], check=True)
            t = time.perf_counter()
            subprocess.run(["cp", str(path), str(copy)], check=True)
            cp_times.append(time.perf_counter() - t)
            copy.unlink()
            subprocess.run(["sync"], check=True)
            t = time.perf_counter()
            state = client.upload(path)
            up_times.append(time.perf_counter() - t)
            assert state["status"] == "queued", state
            client.abort(state["id"])
            # The same upload with the SHA-256 already known (as a CLI that hashed first):
            # the protocol's transfer alone.
            subprocess.run(["sync"], check=True)
            t = time.perf_counter()
            state = client.upload(path, sha256=sha256)
            known_times.append(time.perf_counter() - t)
            if i < runs - 1:
                client.abort(state["id"])
        stop.set()
        cp, up, known = statistics.median(cp_times), statistics.median(up_times), statistics.median(known_times)

        out = _manage(data_dir, "shell", "-c", (
            "import time;"
            "from hub.uploads.services import upload_ingest;"
            "t = time.perf_counter();"
            f"u = upload_ingest(upload_id='{state['id']}', task_id='bench');"
            f"print('RESULT', u.status, round(time.perf_counter() - t, 2), {PEAK_RSS})"
        ))
        ingest = next(line for line in out.splitlines() if line.startswith("RESULT")).split()[1:]
    finally:
        stop_process(server)
    print(f"\n== Upload through the local-disk backend ({size / 1e9:.2f} GB, {state['partCount']} parts, median of {runs}) ==")
    print(f"cp                     {cp:7.2f} s  {size / cp / 1e6:8.0f} MB/s   runs: {', '.join(f'{x:.2f}' for x in cp_times)}")
    print(f"protocol client        {up:7.2f} s  {size / up / 1e6:8.0f} MB/s   runs: {', '.join(f'{x:.2f}' for x in up_times)}"
          f"  ({parallel} parts in flight, SHA-256 alongside)")
    print(f"protocol client, hash known {known:7.2f} s  {size / known / 1e6:8.0f} MB/s   runs: "
          f"{', '.join(f'{x:.2f}' for x in known_times)}")
    print(f"throughput ratio client/cp = {cp / up:.2f} with hashing, {cp / known:.2f} transfer only  (target >= 0.5)")
    print(f"peak RSS of a web worker during the upload = {peak['rss']:.0f} MB")
    print(f"full ingest service on the upload (verify, inspect, hard-link to its blob key): "
          f"status={ingest[0]}, {ingest[1]} s, peak RSS {ingest[2]} MB")
    return {"upload_s": up, "upload_known_sha_s": known, "cp_s": cp, "ratio": cp / up, "web_peak_rss_mb": peak["rss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the big files go")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--only", choices=["ingest", "upload"], help="run one of the two benchmarks")
    parser.add_argument("--parallel", type=int, default=4, help="parts the upload client sends at once")
    args = parser.parse_args()
    with scratch_dir("mw-ingest-bench-", keep=args.keep, dir=args.dir) as work:
        path = work / "sd15-bench.safetensors"
        write_checkpoint(path)
        if args.only != "upload":
            bench_ingest(path, args.runs, work / "hub")
        if args.only != "ingest":
            bench_upload(path, work / "hub", args.runs, args.parallel)


if __name__ == "__main__":
    main()
