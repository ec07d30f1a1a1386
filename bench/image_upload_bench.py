"""Web worker memory while an example image is uploaded: the header is read, the pixels are not.

A 7000×7000 PNG compresses to a couple of hundred KB but decodes to 147 MB
of RGB. The hub's web process only reads its header and stages the bytes;
the ingest worker decodes it. This script measures that as an operator would
see it:

1. an embedded hub (SQLite, local disk, filesystem broker) in a temporary
   data dir, with a user, a published model and an API key with `upload`;
2. a real gunicorn (one sync worker) serving `hub.wsgi`; the image is
   POSTed over HTTP to `/api/v1/model-versions/{id}/images`;
3. the worker process's peak RSS is reset (`/proc/PID/clear_refs`) before
   the upload and read (`VmHWM`) after it: growth = peak - RSS before;
4. baseline, the same way: a gunicorn serving a WSGI app that decodes and
   re-encodes the posted image in process (`hub.files.images.image_clean`,
   the old in-request path);
5. the staged image is then processed as the ingest worker does, in a child
   process, whose peak RSS is printed for reference.

Target: growth ≤ 64 MB. Linux only (reads /proc).

    .venv/bin/python bench/image_upload_bench.py [--side 7000] [--keep]
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._live import embedded_env, free_port, scratch_dir, start_gunicorn, stop, wait_until_healthy  # noqa: E402

TARGET_MB = 64


def baseline_app(environ, start_response):
    """The old path: the web process decodes and re-encodes the image inside the request."""
    from hub.files.images import ImageRejected, image_clean

    if environ.get("PATH_INFO") == "/api/v1/health":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"status": "ok"}']
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    try:
        clean = image_clean(io.BytesIO(body), size=len(body))
    except ImageRejected as exc:
        start_response("400 Bad Request", [("Content-Type", "application/json")])
        return [json.dumps({"error": str(exc)}).encode()]
    start_response("201 Created", [("Content-Type", "application/json")])
    return [json.dumps({"width": clean.width, "height": clean.height, "bytes": len(clean.data)}).encode()]


def big_png(side: int) -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (side, side), (24, 40, 90))
    draw = ImageDraw.Draw(im)
    for i in range(0, side, max(1, side // 14)):
        draw.rectangle([i, i, i + side // 20, i + side // 20], fill=(200, 120 + i % 100, 40))
    out = io.BytesIO()
    im.save(out, "PNG", optimize=True)
    return out.getvalue()


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def gunicorn_worker_pid(master: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children")
        pids = children.read_text().split() if children.exists() else []
        if pids:
            return int(pids[0])
        time.sleep(0.1)
    raise SystemExit("gunicorn started no worker")


class Gunicorn:
    def __init__(self, app: str, env: dict):
        self.app, self.env, self.port = app, env, free_port()

    def __enter__(self) -> "Gunicorn":
        self.proc = start_gunicorn(self.port, "--workers", "1", "--worker-class", "sync", "--timeout", "120",
                                   "--log-level", "warning", app=self.app, env=self.env)
        wait_until_healthy(self.port)
        self.worker = gunicorn_worker_pid(self.proc.pid)
        return self

    def post(self, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request("POST", path, body=body, headers={"Content-Length": str(len(body)), **headers})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data

    def measure(self, send) -> tuple[float, float, tuple[int, bytes]]:
        """(RSS before in MB, peak growth during `send` in MB, its response)."""
        Path(f"/proc/{self.worker}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = status_kb(self.worker, "VmRSS")
        result = send()
        peak = status_kb(self.worker, "VmHWM")
        return before / 1024, (peak - before) / 1024, result

    def __exit__(self, *exc) -> None:
        stop(self.proc)


def multipart(field: str, filename: str, data: bytes, extra: dict[str, str] | None = None) -> tuple[bytes, str]:
    boundary = "mwbench" + os.urandom(8).hex()
    parts = []
    for name, value in (extra or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def setup_hub(data_dir: Path) -> tuple[dict, str, int]:
    """Migrate an embedded hub and create what the upload needs; returns (env, API key, version id)."""
    env = embedded_env(data_dir)
    script = (
        "import django, io, sys; django.setup()\n"
        "from django.core.management import call_command; call_command('migrate', verbosity=0)\n"
        "from hub.accounts.services import user_create, api_key_create\n"
        "from tests.support.builders import make_published_model\n"
        "u = user_create(username='bench', password='bench-password-1')\n"
        "m = make_published_model(u, 'Bench model')\n"
        "print(api_key_create(user=u, name='b', scopes=['read', 'upload']).plaintext, m.versions.get().pk)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    token, version_id = out.stdout.split()[-2:]
    return env, token, int(version_id)


def process_on_worker(env: dict, image_id: int) -> tuple[str, float, float]:
    """Run the ingest task's body in a child process: (status, seconds, peak RSS MB)."""
    script = (
        "import django, resource, sys, time; django.setup()\n"
        "from hub.uploads.image_services import example_image_process\n"
        "t = time.perf_counter(); image = example_image_process(image_id=int(sys.argv[1]))\n"
        "print(image.status, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(image_id)], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True)
    status, seconds, peak = out.stdout.split()[-3:]
    return status, float(seconds), float(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=7000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    args = parser.parse_args()
    if not Path("/proc/self/clear_refs").exists():
        raise SystemExit("needs Linux /proc")

    data = big_png(args.side)
    small = big_png(64)
    print(f"image: {args.side}×{args.side} PNG, {len(data) / 1024:.0f} KB "
          f"({args.side * args.side * 3 / 2**20:.0f} MiB as RGB pixels)")
    with scratch_dir("mw-imgbench-", keep=args.keep) as data_dir:
        env, token, version_id = setup_hub(data_dir)
        path = f"/api/v1/model-versions/{version_id}/images"
        auth = {"Authorization": f"Bearer {token}"}

        with Gunicorn("hub.wsgi:application", env) as hub:
            body, content_type = multipart("image", "warm.png", small)
            for _ in range(3):  # import and warm every module of the upload path first
                status, _ = hub.post(path, body, {**auth, "Content-Type": content_type})
                assert status == 201, status
            body, content_type = multipart("image", "big.png", data)
            rss, growth, (status, response) = hub.measure(
                lambda: hub.post(path, body, {**auth, "Content-Type": content_type}))
        if status != 201:
            raise SystemExit(f"upload answered {status}: {response[:300]!r}")
        state = json.loads(response)
        print(f"\n== hub web worker (gunicorn sync, hub.wsgi) ==\n"
              f"RSS before {rss:.0f} MB, growth during the upload {growth:.1f} MB; "
              f"answer 201, status {state['status']!r}, {state['width']}×{state['height']} declared")

        with Gunicorn("bench.image_upload_bench:baseline_app", env) as old:
            for _ in range(3):
                old.post("/", small, {"Content-Type": "image/png"})
            base_rss, base_growth, (status, _) = old.measure(lambda: old.post("/", data, {"Content-Type": "image/png"}))
        print(f"\n== baseline: decode and re-encode inside the web worker (the old path) ==\n"
              f"RSS before {base_rss:.0f} MB, growth during the upload {base_growth:.1f} MB (answer {status})")

        worker_status, seconds, worker_peak = process_on_worker(env, state["id"])
        print(f"\n== ingest worker: example_image_process ==\nstatus {worker_status!r} in {seconds:.2f} s, "
              f"peak RSS {worker_peak:.0f} MB (decode, re-encode, three WebP sizes)")

        ok = growth <= TARGET_MB and worker_status == "ready"
        ratio = growth / base_growth if base_growth > 0 else float("nan")
        print(f"\n-> web worker growth {growth:.1f} MB (target <= {TARGET_MB} MB), "
              f"{ratio:.3f}× the in-process decode's {base_growth:.0f} MB  [{'OK' if ok else 'FAIL'}]")
        if not ok:
            sys.exit(1)


if __name__ == "__main__":
    main()
