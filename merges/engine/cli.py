"""Command line: ``python -m merges.engine run|validate|inspect``.

Exit codes: 0 success, 2 usage or validation error (nothing was merged),
1 runtime failure (bad input file, I/O error, failed merge), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence, TextIO

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


def _clean(text: object) -> str:
    """Printable form of file-supplied text: no terminal escape sequences."""
    s = str(text)
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in s)


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _parse_inputs(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise SystemExit(_usage(f"--input expects NAME=PATH, got {pair!r}"))
        if name in out:
            raise SystemExit(_usage(f"--input {name} given twice"))
        out[name] = path
    return out


def _usage(msg: str) -> int:
    _err(msg)
    return EXIT_INVALID


def _print_recipe_error(e: Any) -> None:
    print("invalid recipe:", file=sys.stderr)
    for path, message in e.errors:
        print(f"  {path}: {message}" if path else f"  {message}", file=sys.stderr)


class _Progress:
    """tqdm bar on a terminal, nothing otherwise (logs stay clean)."""

    def __init__(self, stream: TextIO) -> None:
        self.bar = None
        if stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, file=stream, desc="merging")

    def __call__(self, done: int, total: int, done_bytes: int, total_bytes: int) -> None:
        if self.bar is None:
            return
        if not total_bytes:  # LoRA merges count modules, not bytes
            done_bytes, total_bytes = done, total
            self.bar.unit, self.bar.unit_scale = "module", False
        if self.bar.total != total_bytes:
            self.bar.total = total_bytes
        self.bar.n = done_bytes
        self.bar.set_postfix_str(f"{done}/{total} tensors", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_run(args: argparse.Namespace) -> int:
    from .executor import MergeCancelled, MergeError, execute
    from .hash_cache import HashCache
    from .recipe import RecipeError, load_recipe
    from .safetensors_io import SafetensorsError

    recipe_path = Path(args.recipe)
    try:
        recipe = load_recipe(recipe_path)
    except RecipeError as e:
        _print_recipe_error(e)
        return EXIT_INVALID
    except OSError as e:
        _err(f"cannot read recipe: {e}")
        return EXIT_INVALID
    inputs = _parse_inputs(args.input or [])
    unknown = sorted(set(inputs) - set(recipe.inputs))
    if unknown:
        return _usage(f"--input names not in the recipe: {', '.join(unknown)}")
    # {path: …} inputs are relative to the recipe file, not the shell.
    for name, spec in recipe.inputs.items():
        if name not in inputs and "path" in spec:
            inputs[name] = str((recipe_path.parent / spec["path"]).resolve())
    progress = _Progress(sys.stderr)
    try:
        result = execute(
            recipe,
            inputs,
            args.output,
            device=args.device,
            progress=progress,
            threads=args.threads,
            fsync=args.fsync,
            output_hashes=args.hashes,
            hash_cache=HashCache(enabled=not args.no_hash_cache),
        )
    except RecipeError as e:
        progress.close()
        _print_recipe_error(e)
        return EXIT_INVALID
    except KeyboardInterrupt:
        progress.close()
        _err("interrupted; no output written")
        return EXIT_INTERRUPTED
    except MergeCancelled:
        progress.close()
        _err("cancelled; no output written")
        return EXIT_INTERRUPTED
    except (MergeError, SafetensorsError) as e:
        progress.close()
        _err(f"{e} [{e.code}]")
        return EXIT_RUNTIME if not (isinstance(e, MergeError) and e.code == "bad_device") else EXIT_INVALID
    except OSError as e:
        progress.close()
        _err(str(e))
        return EXIT_RUNTIME
    progress.close()
    if args.json:
        print(json.dumps(result.__dict__, indent=2, sort_keys=True))
    else:
        print(f"wrote {result.output_path}")
        print(f"  sha256     {result.sha256}")
        print(f"  tensors    {result.tensors}")
        print(f"  bytes      {result.bytes}")
        print(f"  merge key  {result.merge_key}")
        print(f"  time       {result.seconds:.2f} s")
        if result.passthrough_keys:
            print(f"  {len(result.passthrough_keys)} key(s) copied from the first input (missing in others or not float)")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from .recipe import RecipeError, load_recipe

    try:
        recipe = load_recipe(args.recipe)
    except RecipeError as e:
        if args.json:
            print(json.dumps({"valid": False, "errors": [{"path": p, "message": m} for p, m in e.errors]}, indent=2))
        else:
            _print_recipe_error(e)
        return EXIT_INVALID
    except OSError as e:
        _err(f"cannot read recipe: {e}")
        return EXIT_INVALID
    if args.json:
        print(json.dumps({"valid": True, "recipe_hash": recipe.hash(), "canonical": recipe.doc}, indent=2))
    elif args.canonical:
        print(recipe.canonical_json())
    else:
        print(f"ok: {len(recipe.steps)} step(s), output {recipe.output_step} ({recipe.output_dtype})")
        print(f"recipe hash {recipe.hash()}")
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from .inspect import inspect_file
    from .safetensors_io import SafetensorsError

    try:
        info = inspect_file(args.file, hashes=not args.no_hashes)
    except SafetensorsError as e:
        if args.json:
            print(json.dumps({"error": e.code, "message": e.message}, indent=2))
        _err(f"{args.file}: {e} [{e.code}]")
        return EXIT_RUNTIME
    except OSError as e:
        _err(str(e))
        return EXIT_RUNTIME
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True, default=str))
        return EXIT_OK
    _print_inspection(args.file, info)
    return EXIT_OK


def _print_inspection(path: str, info: dict[str, Any]) -> None:
    rows: list[tuple[str, Any]] = [
        ("file", path),
        ("format", info.get("format")),
        ("size", f"{info.get('file_size', 0):,} bytes"),
        ("kind", info.get("kind")),
        ("architecture", info.get("architecture") or "unknown"),
    ]
    lora = info.get("lora")
    if lora:
        rows += [
            ("lora kind", lora.get("kind")),
            ("base", lora.get("base")),
            ("rank", lora.get("rank")),
            ("alpha", lora.get("alpha")),
            ("modules", lora.get("modules")),
        ]
    if info.get("embedding_vectors"):
        rows.append(("vectors", info["embedding_vectors"]))
    if info.get("format") == "safetensors":
        dtypes = ", ".join(f"{k} x{v}" for k, v in sorted((info.get("dtypes") or {}).items()))
        rows += [
            ("tensors", info.get("tensor_count")),
            ("parameters", f"{info.get('parameters', 0):,}"),
            ("dtype", f"{info.get('dtype')} ({dtypes})"),
        ]
    for name, value in (info.get("hashes") or {}).items():
        rows.append((name, value if value is not None else "-"))
    meta = info.get("metadata") or {}
    for key, value in (meta.get("fields") or {}).items():
        rows.append((key, value))
    if meta.get("trigger_words"):
        rows.append(("trigger words", ", ".join(meta["trigger_words"])))
    if meta.get("merge_recipe"):
        rows.append(("merge recipe", json.dumps(meta["merge_recipe"], sort_keys=True)))
    if meta.get("merge_models"):
        rows.append(("merged from", f"{len(meta['merge_models'])} model(s)"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{_clean(key):<{width}}  {_clean(value)}")
    for w in info.get("warnings") or []:
        print(f"warning: {_clean(w)}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m merges.engine", description="Mergeworks merge engine")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a recipe into a .safetensors file")
    run.add_argument("recipe", help="recipe file (JSON or YAML)")
    run.add_argument("-o", "--output", required=True, help="output .safetensors path")
    run.add_argument("--input", action="append", metavar="NAME=PATH", help="file for a recipe input (repeatable)")
    run.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    run.add_argument("--threads", type=int, default=None, help="slices computed at once (default: CPU cores)")
    run.add_argument("--fsync", action="store_true", help="fsync the output before renaming it into place")
    run.add_argument("--hashes", action="store_true", help="compute all Civitai hashes of the output")
    run.add_argument("--no-hash-cache", action="store_true",
                     help="hash every input file again instead of trusting the hash cache "
                          "($MERGEWORKS_HASH_CACHE, default ~/.cache/mergeworks/hashes.json)")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check a recipe without running it")
    val.add_argument("recipe")
    val.add_argument("--json", action="store_true")
    val.add_argument("--canonical", action="store_true", help="print the canonical JSON")
    val.set_defaults(func=cmd_validate)

    ins = sub.add_parser("inspect", help="describe a model file")
    ins.add_argument("file")
    ins.add_argument("--json", action="store_true")
    ins.add_argument("--no-hashes", action="store_true", help="skip hashing (fast on big files)")
    ins.set_defaults(func=cmd_inspect)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None) is not None and args.threads < 1:
        return _usage("--threads must be at least 1")
    if args.command == "run" and not (args.device == "cpu" or args.device.startswith("cuda")):
        return _usage(f"--device must be cpu or cuda, got {args.device!r}")
    try:
        return args.func(args)
    except SystemExit as e:
        return int(e.code or 0)
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

