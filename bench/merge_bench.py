"""Merge benchmark: this engine vs a naive full-load merge vs sd-mecha 1.1.8.

    .venv/bin/python bench/merge_bench.py            # SD1.5 comparison + SDXL peak RSS
    .venv/bin/python bench/merge_bench.py --no-sdxl  # SD1.5 only

Generates two fp16 checkpoints with the real key names and shapes of SD1.5
(1,130 tensors, 2.13 GB) from sd-mecha's ``sd1-ldm`` key list (and SDXL's
``sdxl-sgm`` for the memory figure) under ``bench/out/``, then merges them
with weighted_sum at alpha=0.5 three ways, each in its own process, which
reports its own peak RSS (``VmHWM``):

* engine: ``merges.engine.run_recipe`` (input SHA-256s passed in, as the hub
  passes the hashes it already knows);
* naive: ``safetensors.torch.load_file`` on both, ``(1-a)*A + a*B`` per key
  in float32, ``save_file``;
* sd-mecha: ``sd_mecha.merge(sd_mecha.weighted_sum(a, b, alpha=0.5), output=…)``;
* cli: the whole ``python -m merges.engine run recipe.json -o out.safetensors``
  process with ``{path: …}`` inputs, provenance included (input SHA-256s
  computed while merging, output SHA-256 printed), timed from spawn to exit:
  once with an empty hash cache (``cli cold``, target ≤ 0.35 × the naive
  merge) and once more with the cache that run filled (``cli warm``).

Times are measured inside each process around the merge call (imports not
included) and also as whole-process wall time. The engine's output tensors
must equal the naive result bit for bit. Needs ``pip install -e .[bench]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
ALPHA = 0.5


def _key_list(config: str) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of every mandatory key of an sd-mecha model config."""
    import sd_mecha
    import yaml

    path = Path(sd_mecha.__file__).parent / "extensions" / "builtin" / "model_configs" / f"{config}.yaml"
    doc = yaml.safe_load(path.read_text())
    keys = []
    for component in doc["components"].values():
        for key, meta in component.items():
            if not meta.get("optional"):
                keys.append((key, tuple(meta["shape"])))
    return sorted(keys)


def generate(config: str, path: Path, seed: int) -> str:
    """Write a random fp16 checkpoint with the config's keys; returns its SHA-256."""
    import torch

    from merges.engine.hashing import FileHasher
    from merges.engine.safetensors_io import SafetensorsWriter, TensorSpec

    keys = _key_list(config)
    specs = [TensorSpec(k, "F16", s) for k, s in keys]
    expected = None
    sidecar = path.with_suffix(".sha256")
    if path.exists() and sidecar.exists():
        from merges.engine.safetensors_io import read_header_path

        try:
            header = read_header_path(path)
            expected = [(k, i.shape) for k, i in sorted(header.tensors.items())] == keys
        except ValueError:
            expected = False
        if expected:
            return sidecar.read_text().strip()
    gen = torch.Generator().manual_seed(seed)
    hasher = FileHasher(("sha256",))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        writer = SafetensorsWriter(fd, specs, {"format": "pt"}, sink=lambda v: hasher.update(v, owned=True))
        for key, shape in keys:
            n = math.prod(shape)
            for start in range(0, n, 1 << 22):
                count = min(1 << 22, n - start)
                # Weight-like magnitudes, so fp16 stays out of the subnormals mostly.
                writer.write(key, (torch.randn(count, generator=gen) * 0.05).half())
        writer.close()
    finally:
        os.close(fd)
    sha = hasher.hexdigests()["sha256"]
    sidecar.write_text(sha + "\n")
    return sha


# -- the three contenders, each run in a child process --------------------------------------


def _child_engine(a: str, b: str, out: str, sha_a: str, sha_b: str) -> None:
    # The engine imports torch lazily; import it here, outside the timed
    # call, as the other contenders do (torch's import alone takes 2 s here).
    import torch  # noqa: F401

    import merges.engine.executor  # noqa: F401
    from merges.engine import run_recipe

    recipe = {
        "format": "mergeworks/recipe@1",
        "architecture": os.environ.get("BENCH_ARCH", "sd1"),
        "inputs": {"a": {"sha256": sha_a}, "b": {"sha256": sha_b}},
        "steps": [{"id": "merge", "op": "weighted_sum", "inputs": ["a", "b"], "alpha": ALPHA}],
        "output": {"step": "merge", "dtype": "fp16"},
    }
    # Like the other two contenders the merge does not hash its output; the
    # hub's ingest hashes it once (the "engine+sha256" row shows that cost).
    hashed = os.environ.get("BENCH_HASH_OUTPUT") == "1"
    t0 = time.perf_counter()
    run_recipe(recipe, {"a": a, "b": b}, out, hash_output=hashed, input_sha256s={"a": sha_a, "b": sha_b})
    _report(time.perf_counter() - t0)


def _child_naive(a: str, b: str, out: str) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    t0 = time.perf_counter()
    sa, sb = load_file(a), load_file(b)
    merged = {}
    for k in sa:
        merged[k] = ((1 - ALPHA) * sa[k].float() + ALPHA * sb[k].float()).to(torch.float16)
    save_file(merged, out)
    _report(time.perf_counter() - t0)


def _child_mecha(a: str, b: str, out: str) -> None:
    import functools

    import sd_mecha
    import torch
    import tqdm

    t0 = time.perf_counter()
    recipe = sd_mecha.weighted_sum(sd_mecha.model(a), sd_mecha.model(b), alpha=ALPHA)
    quiet = functools.partial(tqdm.tqdm, disable=True)
    sd_mecha.merge(recipe, output=out, output_dtype=torch.float16, tqdm=quiet)
    _report(time.perf_counter() - t0)


def _report(seconds: float) -> None:
    print("BENCH_RESULT " + json.dumps({"merge_s": seconds, "hwm_mb": _own_peak_rss_mb()}), flush=True)


def _own_peak_rss_mb() -> float | None:
    """This process's peak RSS since exec (VmHWM), on Linux.

    Not ``ru_maxrss`` as the parent sees it: subprocess spawns with vfork, and
    Linux carries the spawning process's peak into the child's maxrss at exec,
    so a parent that had imported torch or generated inputs would be counted
    against every contender.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_child(kind: str, *args: str, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run one contender; returns merge time, process wall time and its own peak RSS (MB)."""
    cmd = [sys.executable, __file__, "_child", kind, *args]
    # Start each contender with no dirty pages left by the one before: the
    # kernel's writeback of 2 GB would otherwise slow whoever runs next.
    os.sync()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env={**os.environ, **(env or {})}, cwd=ROOT)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed (exit {proc.returncode}):\n{out}")
    line = next(l for l in out.splitlines() if l.startswith("BENCH_RESULT "))
    result = json.loads(line.split(" ", 1)[1])
    result["process_s"] = wall
    result["peak_rss_mb"] = result.pop("hwm_mb", None) or usage.ru_maxrss / 1024  # Linux reports KiB
    # CPU seconds: steadier than wall time on a machine shared with other work.
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


def run_cli(a: Path, b: Path, out: Path, cache: Path) -> dict[str, float]:
    """The whole CLI process, from spawn to exit; its output must be the same file as the engine's."""
    recipe = OUT / "cli_recipe.json"
    recipe.write_text(json.dumps({
        "format": "mergeworks/recipe@1",
        "architecture": "sd1",
        "inputs": {"a": {"path": str(a)}, "b": {"path": str(b)}},
        "steps": [{"id": "merge", "op": "weighted_sum", "inputs": ["a", "b"], "alpha": ALPHA}],
        "output": {"step": "merge", "dtype": "fp16"},
    }))
    os.sync()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "merges.engine", "run", str(recipe), "-o", str(out), "--json"],
                          cwd=ROOT, env={**os.environ, "MERGEWORKS_HASH_CACHE": str(cache)}, capture_output=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"cli failed (exit {proc.returncode}):\n{proc.stderr.decode()[-3000:]}")
    printed = json.loads(proc.stdout)
    return {"merge_s": printed["seconds"], "process_s": wall, "peak_rss_mb": float("nan"), "sha256": printed["sha256"],
            "inputs": printed["input_sha256s"]}


def _sha256_seconds(path: Path) -> float:
    import hashlib

    t0 = time.perf_counter()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
    return time.perf_counter() - t0


def _file_sha256(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def compare(path_x: str, path_y: str) -> tuple[bool, float]:
    """(bit-identical tensors?, max |x - y|), streaming one tensor at a time."""
    import torch

    from merges.engine.safetensors_io import SafetensorsReader

    rx, ry = SafetensorsReader(path_x), SafetensorsReader(path_y)
    if set(rx.tensors) != set(ry.tensors):
        return False, math.inf
    equal, worst = True, 0.0
    for k in sorted(rx.tensors):
        x, y = rx.read(k), ry.read(k)
        if x.shape != y.shape:
            return False, math.inf
        if not torch.equal(x, y):
            equal = False
            worst = max(worst, float((x.float() - y.float()).abs().max()))
    return equal, worst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-sdxl", action="store_true", help="skip the SDXL peak-RSS run")
    p.add_argument("--no-mecha", action="store_true", help="skip sd-mecha")
    p.add_argument("--keep", action="store_true", help="keep the generated files in bench/out")
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    print("generating SD1.5-shaped fp16 checkpoints (sd-mecha sd1-ldm key list) …", flush=True)
    a, b = OUT / "sd1_a.safetensors", OUT / "sd1_b.safetensors"
    sha_a, sha_b = generate("sd1-ldm", a, 1), generate("sd1-ldm", b, 2)
    from merges.engine.safetensors_io import read_header_path

    n_keys = len(read_header_path(a).tensors)
    print(f"  {n_keys} tensors, {a.stat().st_size / 1e9:.2f} GB each", flush=True)
    # Warm the page cache the same way for everyone.
    for f in (a, b):
        with open(f, "rb") as fh:
            while fh.read(64 << 20):
                pass

    results: dict[str, dict[str, float]] = {}
    outs = {k: str(OUT / f"sd1_{k}.safetensors") for k in ("engine", "naive", "mecha")}
    results["engine"] = run_child("engine", str(a), str(b), outs["engine"], sha_a, sha_b)
    outs["engine+sha256"] = str(OUT / "sd1_engine_hashed.safetensors")
    results["engine+sha256"] = run_child(
        "engine", str(a), str(b), outs["engine+sha256"], sha_a, sha_b, env={"BENCH_HASH_OUTPUT": "1"}
    )
    results["naive"] = run_child("naive", str(a), str(b), outs["naive"])
    if not args.no_mecha:
        results["sd-mecha"] = run_child("mecha", str(a), str(b), outs["mecha"])
    cache = OUT / "cli-hash-cache.json"
    cache.unlink(missing_ok=True)
    outs["cli"] = str(OUT / "sd1_cli.safetensors")
    results["cli cold"] = run_cli(a, b, Path(outs["cli"]), cache)
    results["cli warm"] = run_cli(a, b, Path(outs["cli"]), cache)
    cache.unlink(missing_ok=True)

    print(f"\nSD1.5 fp16 weighted_sum alpha=0.5 ({os.cpu_count()} cores):")
    print(f"  {'':10} {'merge s':>9} {'process s':>10} {'peak RSS MB':>12}")
    for name, r in results.items():
        print(f"  {name:10} {r['merge_s']:9.2f} {r['process_s']:10.2f} {r['peak_rss_mb']:12.0f}")
    e, n = results["engine"], results["naive"]
    print(f"  engine / naive time: {e['merge_s'] / n['merge_s']:.3f} (target <= 0.3)")
    if "sd-mecha" in results:
        m = results["sd-mecha"]
        print(f"  engine / sd-mecha time: {e['merge_s'] / m['merge_s']:.3f} (target <= 0.2)")
    print(f"  engine peak RSS: {e['peak_rss_mb']:.0f} MB (target <= 512)")
    cold, warm = results["cli cold"], results["cli warm"]
    ratio = cold["process_s"] / n["merge_s"]
    print(f"  cli whole process, cold hash cache / naive merge: {ratio:.3f} (target <= 0.35) "
          f"{'OK' if ratio <= 0.35 else 'MISSED'}; / naive whole process: {cold['process_s'] / n['process_s']:.3f}")
    print(f"  cli whole process, warm hash cache / naive merge: {warm['process_s'] / n['merge_s']:.3f}")
    right = cold["inputs"] == {"a": sha_a, "b": sha_b} and warm["inputs"] == cold["inputs"]
    print(f"  cli input hashes right (cold and warm): {right}; cli output sha256 == file: "
          f"{cold['sha256'] == warm['sha256'] == _file_sha256(outs['cli'])}")
    h = results["engine+sha256"]
    print(f"  engine hashing its output too (the CLI's default): {h['merge_s'] / n['merge_s']:.3f} x naive, "
          f"peak RSS {h['peak_rss_mb']:.0f} MB; hashlib.sha256 of one {a.stat().st_size / 1e9:.2f} GB file alone "
          f"takes {_sha256_seconds(a):.2f} s here")
    same, diff = compare(outs["engine"], outs["naive"])
    print(f"  engine output == naive output: {same}" + ("" if same else f" (max |diff| {diff})"))
    same_cli, diff_cli = compare(outs["cli"], outs["naive"])
    print(f"  cli output == naive output: {same_cli}" + ("" if same_cli else f" (max |diff| {diff_cli})"))
    if "sd-mecha" in results:
        same_m, diff_m = compare(outs["mecha"], outs["naive"])
        print(f"  sd-mecha output == naive output: {same_m}" + ("" if same_m else f" (max |diff| {diff_m:.3g}, torch.lerp rounding)"))
    if not args.keep:
        for f in (a, b, *outs.values()):
            Path(f).unlink(missing_ok=True)
            Path(f).with_suffix(".sha256").unlink(missing_ok=True)

    if not args.no_sdxl:
        print("\ngenerating SDXL-shaped fp16 checkpoints (sdxl-sgm key list) …", flush=True)
        xa, xb = OUT / "sdxl_a.safetensors", OUT / "sdxl_b.safetensors"
        xsha_a, xsha_b = generate("sdxl-sgm", xa, 3), generate("sdxl-sgm", xb, 4)
        xout = OUT / "sdxl_engine.safetensors"
        n_x = len(read_header_path(xa).tensors)
        r = run_child("engine", str(xa), str(xb), str(xout), xsha_a, xsha_b, env={"BENCH_ARCH": "sdxl"})
        print(f"SDXL fp16 weighted_sum ({n_x} tensors, {xa.stat().st_size / 1e9:.2f} GB each):")
        print(f"  engine: merge {r['merge_s']:.2f} s, process {r['process_s']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB")
        if not args.keep:
            for f in (xa, xb, xout):
                f.unlink(missing_ok=True)
                f.with_suffix(".sha256").unlink(missing_ok=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        kind, rest = sys.argv[2], sys.argv[3:]
        {"engine": _child_engine, "naive": _child_naive, "mecha": _child_mecha}[kind](*rest)
    else:
        main()
