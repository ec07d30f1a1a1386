"""`mergeworks`: search, inspect, download and upload models, and run merge recipes.

Exit codes: 0 success, 1 failure, 2 usage error, 3 not found, 4 authentication
or permission refused. Results go to stdout (`--json` for machine-readable
output); messages and progress bars go to stderr, bars only on a terminal.
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path
from typing import Any

from hub.cli import config
from hub.cli.api import (
    EXIT_AUTH,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    Api,
    CliError,
    exit_code_for_status,
)
from hub.cli.download import Target, download, parse_target

MODEL_TYPES = ["Checkpoint", "LORA", "LoCon", "LoHa", "TextualInversion", "VAE", "Controlnet", "Other"]
BASE_MODELS = ["SD 1.5", "SD 2.1", "SDXL 1.0", "Pony", "Illustrious", "Flux.1 D", "Flux.1 S", "SD 3.5", "Other"]
JOB_DONE = {"succeeded", "failed", "cancelled"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 too; keep one message format
        self.print_usage(sys.stderr)
        raise CliError(message, EXIT_USAGE)


def _any_case(choices: list[str]):
    """An argparse `type` that accepts a choice in any case (`lora`, `sdxl 1.0`) and returns its canonical spelling."""
    by_key = {c.casefold(): c for c in choices}

    def convert(value: str) -> str:
        try:
            return by_key[value.strip().casefold()]
        except KeyError:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {value!r} (choose from {', '.join(choices)})") from None

    convert.__name__ = "choice"
    return convert


def _out(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def _api(args: argparse.Namespace) -> Api:
    settings = config.resolve_settings(endpoint=args.endpoint, token=args.token)
    return Api(settings.endpoint, settings.token)


def _progress_enabled(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


# --- login / whoami ------------------------------------------------------------------------

def cmd_login(args: argparse.Namespace) -> int:
    token = args.token
    if not token:
        if sys.stdin.isatty():
            token = getpass.getpass("API key (mw_…): ")
        else:
            token = sys.stdin.readline()
    token = (token or "").strip()
    if not token:
        raise CliError("no API key given (pass --token, pipe it on stdin, or type it at the prompt)", EXIT_USAGE)
    if not token.startswith("mw_"):
        raise CliError("that is not a Mergeworks API key (they start with mw_); create one under Account → API keys",
                       EXIT_USAGE)
    stored = config.load_file()
    endpoint = (args.endpoint or stored.get("endpoint") or config.DEFAULT_ENDPOINT).rstrip("/")
    api = Api(endpoint, token)
    response = api.session.get(api.url("/api/v1/me"), timeout=(10, 30))
    if response.status_code == 401:
        raise CliError(f"{endpoint} refused this API key; nothing was stored", EXIT_AUTH)
    who = "?"
    if response.status_code == 403:
        # Valid, but without the read scope /me is closed to it; store it anyway.
        _note("note: this key lacks the 'read' scope; commands that read the catalogue will be refused")
    elif response.ok:
        me = response.json()
        who = f"{me.get('username')} (scopes: {', '.join(me.get('scopes') or [])})"
    else:
        raise CliError(f"{endpoint} answered {response.status_code} to /api/v1/me; is this a Mergeworks hub?",
                       exit_code_for_status(response.status_code))
    path = config.save_file({**stored, "endpoint": endpoint, "token": token})
    _note(f"logged in to {endpoint} as {who}; key stored in {path}")
    return EXIT_OK


def cmd_logout(args: argparse.Namespace) -> int:
    stored = config.load_file()
    if stored.pop("token", None) is None:
        _note("no API key was stored")
        return EXIT_OK
    path = config.save_file(stored)
    _note(f"API key removed from {path} (it is still valid on the hub: revoke it there if it leaked)")
    return EXIT_OK


def cmd_whoami(args: argparse.Namespace) -> int:
    api = _api(args)
    if not api.token:
        raise CliError("not logged in (run `mergeworks login`)", EXIT_AUTH)
    me = api.get_json("/api/v1/me")
    _out(args, me, f"{me['username']} at {api.endpoint} (scopes: {', '.join(me.get('scopes') or [])})")
    return EXIT_OK


# --- search / info ---------------------------------------------------------------------------

def _size(kb: float) -> str:
    size = float(kb) * 1024
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def cmd_search(args: argparse.Namespace) -> int:
    api = _api(args)
    params: dict[str, Any] = {"limit": args.limit, "sort": args.sort}
    for key, value in (("query", args.query), ("tag", args.tag), ("username", args.user)):
        if value:
            params[key] = value
    if args.type:
        params["types"] = args.type
    if args.base_model:
        params["baseModels"] = args.base_model
    body = api.get_json("/api/v1/models", params=params, what="search")
    items = body.get("items", [])
    lines = []
    for m in items:
        versions = m.get("modelVersions") or []
        latest = versions[0] if versions else None
        latest_text = f"{latest['name']} (version {latest['id']})" if latest else "no versions"
        lines.append(f"{m['id']}\t{m['name']}\t{m['type']}\tby {m['creator']['username']}\t{latest_text}"
                     f"\t{m['stats']['downloadCount']} downloads")
    _out(args, body, "\n".join(lines) if lines else "no models found")
    return EXIT_OK


def _version_lines(version: dict) -> list[str]:
    lines = [f"  version {version['id']}: {version['name']} [{version.get('baseModel')}] {version.get('status', '')}"]
    if words := version.get("trainedWords"):
        lines.append(f"    trigger words: {', '.join(words)}")
    for f in version.get("files") or []:
        hashes = f.get("hashes") or {}
        mark = "*" if f.get("primary") else " "
        lines.append(f"   {mark} file {f['id']}: {f['name']} ({_size(f['sizeKB'])}, {f['metadata'].get('format')})"
                     f" SHA256 {hashes.get('SHA256', '?')}")
    return lines


def cmd_info(args: argparse.Namespace) -> int:
    api = _api(args)
    target: Target
    if args.target.isdigit() and not args.version:
        model = api.get_json(f"/api/v1/models/{args.target}", what=f"model {args.target}")
        lines = [f"{model['name']} ({model['type']}) by {model['creator']['username']}, model {model['id']}",
                 f"  {model['stats']['downloadCount']} downloads, visibility {model['visibility']}, "
                 f"tags: {', '.join(model.get('tags') or []) or '-'}"]
        for v in model.get("modelVersions") or []:
            lines += _version_lines(v)
        _out(args, model, "\n".join(lines))
        return EXIT_OK
    target = Target(version_id=int(args.target)) if args.target.isdigit() else parse_target(args.target)
    if target.hash is not None:
        version = api.version_by_hash(target.hash)
    elif target.version_id is not None:
        version = api.version(target.version_id)
    else:
        info = api.repo_revision(target.repo_id or "", target.revision)
        version = api.version(info["mergeworks"]["versionId"])
    model = version.get("model") or {}
    lines = [f"{model.get('name')} ({model.get('type')}) by {(model.get('creator') or {}).get('username')}, "
             f"model {version['modelId']}"] + _version_lines(version)
    _out(args, version, "\n".join(lines))
    return EXIT_OK


# --- download / upload --------------------------------------------------------------------------

def cmd_download(args: argparse.Namespace) -> int:
    given = [x for x in (args.target, args.hash, args.version_id) if x is not None]
    if len(given) != 1:
        raise CliError("name exactly one of: TARGET, --hash, --version-id", EXIT_USAGE)
    if args.hash is not None:
        target = Target(hash=args.hash.lower())
    elif args.version_id is not None:
        target = Target(version_id=args.version_id)
    else:
        target = parse_target(args.target)
    api = _api(args)
    path, version, file = download(
        api, target, output=args.output, file_name=args.file, force=args.force, progress=_progress_enabled(args)
    )
    data = {"path": str(path), "modelVersionId": version["id"], "fileId": file["id"],
            "sha256": file["hashes"]["SHA256"], "size": path.stat().st_size}
    _out(args, data, str(path))
    return EXIT_OK


def _version_fields(args: argparse.Namespace, suggestions: dict) -> dict[str, Any]:
    """The version to create: what the user said, else what the hub's inspection of the file suggests."""
    fields: dict[str, Any] = {"versionName": args.version_name, "publish": args.publish}
    if args.model_id is not None:
        fields["modelId"] = args.model_id
    model_type = args.type or suggestions.get("type")
    base_model = args.base_model or suggestions.get("base_model")
    trained_words = args.trained_word if args.trained_word is not None else suggestions.get("trained_words")
    for key, value in (("name", args.name), ("type", model_type), ("baseModel", base_model),
                       ("visibility", args.visibility), ("description", args.description)):
        if value:
            fields[key] = value
    if model_type == suggestions.get("type") and suggestions.get("checkpoint_type"):
        fields["checkpointType"] = suggestions["checkpoint_type"]
    if trained_words:
        fields["trainedWords"] = [w for w in trained_words if w.strip()]
    if args.tag:
        fields["tags"] = args.tag
    guessed = [f"{label} {value}" for label, value, given in (
        ("type", model_type, args.type), ("base model", base_model, args.base_model),
        ("trigger words", ", ".join(trained_words or []), args.trained_word is not None),
    ) if value and not given]
    if guessed and not args.quiet:
        _note("from the hub's inspection of the file: " + "; ".join(guessed))
    return fields


def cmd_upload(args: argparse.Namespace) -> int:
    from hub.uploads.client import UploadClient, UploadFailed

    path: Path = args.path
    if not path.is_file():
        raise CliError(f"{path} is not a file", EXIT_USAGE)
    settings = config.resolve_settings(endpoint=args.endpoint, token=args.token)
    if not settings.token:
        raise CliError("uploading needs an API key with the 'upload' scope (run `mergeworks login`)", EXIT_AUTH)
    client = UploadClient(settings.endpoint, settings.token)
    from tqdm import tqdm

    bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024, desc=path.name,
               file=sys.stderr, disable=not _progress_enabled(args), leave=False)
    try:
        with bar:
            def on_progress(done: int, total: int) -> None:
                bar.update(done - bar.n)

            state = client.upload(path, model_id=args.model_id, resume_id=args.resume, on_progress=on_progress)
        _note(f"upload {state['id']} sent; waiting for the hub to verify it…")
        state = client.wait(state["id"], timeout=args.timeout)
        if state["status"] != "ready":
            error = state.get("error") or {}
            raise CliError(f"the hub did not accept {path.name}: {state['status']}"
                           f" ({error.get('code')}: {error.get('message')})")
        fields = _version_fields(args, state.get("suggestions") or {})
        created = client.create_version(state["id"], **fields)
    except UploadFailed as exc:
        code = exit_code_for_status(exc.status) if exc.status else EXIT_FAILURE
        if exc.status is None and args.resume is None and "interrupted" in str(exc):
            raise CliError(f"{exc}; rerun with --resume UPLOAD_ID to continue", code) from exc
        raise CliError(f"upload failed: {exc}", code) from exc
    data = {**created, "uploadId": state["id"], "sha256": state.get("sha256")}
    _out(args, data, f"uploaded {path.name}: model {created['modelId']} version {created['modelVersionId']} "
                     f"file {created['fileId']} ({created['status']})")
    return EXIT_OK


# --- recipes ----------------------------------------------------------------------------------

def _job_line(job: dict) -> str:
    line = f"job {job['id']}: {job['status']} {job['progress'] * 100:.0f}%"
    if job.get("error"):
        line += f" ({job['error']})"
    if output := job.get("output"):
        line += f" → model {output['modelId']} version {output['modelVersionId']}"
    return line


def _wait_for_job(api: Api, job: dict, *, timeout: float, progress: bool) -> dict:
    from tqdm import tqdm

    deadline = time.monotonic() + timeout
    with tqdm(total=100, desc=f"job {job['id']}", file=sys.stderr, disable=not progress, leave=False) as bar:
        while job["status"] not in JOB_DONE:
            if time.monotonic() > deadline:
                raise CliError(f"job {job['id']} still {job['status']} after {timeout:.0f}s")
            time.sleep(1.0)
            job = api.get_json(f"/api/v1/merge-jobs/{job['id']}", what=f"job {job['id']}")
            bar.update(round(job["progress"] * 100) - bar.n)
    return job


def _job_exit(job: dict) -> int:
    return EXIT_OK if job["status"] not in ("failed", "cancelled") else EXIT_FAILURE


def cmd_recipe_fork(args: argparse.Namespace) -> int:
    api = _api(args)
    body: dict[str, Any] = {}
    if args.version is not None:
        body["version"] = args.version
    if args.title:
        body["title"] = args.title
    if args.visibility:
        body["visibility"] = args.visibility
    fork = api.post_json(f"/api/v1/recipes/{args.recipe_id}/fork", body, what=f"fork recipe {args.recipe_id}")
    _out(args, fork, f"forked recipe {args.recipe_id} into recipe {fork['id']}: {fork['title']}")
    return EXIT_OK


def cmd_recipe_run(args: argparse.Namespace) -> int:
    api = _api(args)
    body = {"version": args.version} if args.version is not None else {}
    outcome = api.post_json(f"/api/v1/recipes/{args.recipe_id}/run", body, what=f"run recipe {args.recipe_id}")
    if outcome.get("cached"):
        output = outcome["output"]
        _out(args, outcome, f"already merged: model {output['modelId']} version {output['modelVersionId']}")
        return EXIT_OK
    job = outcome["job"]
    if args.wait:
        job = _wait_for_job(api, job, timeout=args.timeout, progress=_progress_enabled(args))
        outcome = {**outcome, "job": job, "output": job.get("output")}
    _out(args, outcome, _job_line(job))
    return _job_exit(job)


def cmd_recipe_status(args: argparse.Namespace) -> int:
    api = _api(args)
    job = api.get_json(f"/api/v1/merge-jobs/{args.job_id}", what=f"job {args.job_id}")
    if args.wait:
        job = _wait_for_job(api, job, timeout=args.timeout, progress=_progress_enabled(args))
    _out(args, job, _job_line(job))
    return _job_exit(job)


# --- parser ---------------------------------------------------------------------------------

def _global_flags(parser: argparse.ArgumentParser, *, defaults: bool) -> argparse.ArgumentParser:
    """The flags every command takes, before the subcommand or after it.

    The top-level parser holds the defaults; each subcommand's copy defaults to
    SUPPRESS, so a flag given before the subcommand is not reset by its absence after it.
    """
    def default(value):
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--endpoint", default=default(None),
                        help=f"hub URL (default: the logged-in hub, $MERGEWORKS_ENDPOINT, or {config.DEFAULT_ENDPOINT})")
    parser.add_argument("--token", default=default(None),
                        help="API key for this call (default: $MERGEWORKS_TOKEN or the stored key)")
    parser.add_argument("--json", action="store_true", default=default(False), help="print results as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", default=default(False), help="no progress bars")
    return parser


def build_parser() -> argparse.ArgumentParser:
    common = _global_flags(_Parser(add_help=False), defaults=False)

    parser = _Parser(prog="mergeworks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _global_flags(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = commands.add_parser("login", parents=[common], help="store an API key for a hub")
    p.set_defaults(func=cmd_login)
    p = commands.add_parser("logout", parents=[common], help="forget the stored API key")
    p.set_defaults(func=cmd_logout)
    p = commands.add_parser("whoami", parents=[common], help="show the account of the stored key")
    p.set_defaults(func=cmd_whoami)

    p = commands.add_parser("search", parents=[common], help="search models")
    p.add_argument("query", nargs="?")
    p.add_argument("--type", action="append", type=_any_case(MODEL_TYPES), metavar="{" + ",".join(MODEL_TYPES) + "}")
    p.add_argument("--base-model", action="append", type=_any_case(BASE_MODELS), metavar="BASE_MODEL",
                   help=", ".join(BASE_MODELS))
    p.add_argument("--tag")
    p.add_argument("--user", help="creator's username")
    p.add_argument("--sort", default="Newest", choices=["Newest", "Most Downloaded", "Highest Rated"])
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_search)

    p = commands.add_parser("info", parents=[common], help="show a model, a version, or the version holding a hash")
    p.add_argument("target", help="model id, user/model[@version], a hash, or with --version a version id")
    p.add_argument("--version", action="store_true", help="TARGET is a version id, not a model id")
    p.set_defaults(func=cmd_info)

    p = commands.add_parser("download", parents=[common], help="download a file, resumably, and verify its SHA-256")
    p.add_argument("target", nargs="?", help="version id, hash, or user/model[@version]")
    p.add_argument("--hash", help="a file hash of any kind (SHA256, AutoV1/V2/V3, CRC32, BLAKE3)")
    p.add_argument("--version-id", type=int)
    p.add_argument("--file", help="file name within the version (default: the matching or primary file)")
    p.add_argument("-o", "--output", type=Path, help="file or folder to write to (default: ./<file name>)")
    p.add_argument("--force", action="store_true", help="replace an existing file with other contents")
    p.set_defaults(func=cmd_download)

    p = commands.add_parser("upload", parents=[common], help="upload a model file and create a version")
    p.add_argument("path", type=Path)
    p.add_argument("--model-id", type=int, help="add a version to this model of yours")
    p.add_argument("--name", help="model name for a new model (default: suggested from the file)")
    p.add_argument("--version-name", default="v1.0")
    p.add_argument("--type", type=_any_case(MODEL_TYPES), metavar="{" + ",".join(MODEL_TYPES) + "}",
                   help="any case (default: what the hub detects in the file)")
    p.add_argument("--base-model", type=_any_case(BASE_MODELS), metavar="BASE_MODEL",
                   help=", ".join(BASE_MODELS) + " (default: what the hub detects in the file)")
    p.add_argument("--trained-word", action="append", metavar="WORD",
                   help="a trigger word; repeat for several (default: the words the file's training tags suggest)")
    p.add_argument("--visibility", choices=["public", "unlisted", "private"])
    p.add_argument("--description")
    p.add_argument("--tag", action="append")
    p.add_argument("--publish", action="store_true", help="publish the version right away")
    p.add_argument("--resume", metavar="UPLOAD_ID", help="continue an interrupted upload")
    p.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the hub's verification")
    p.set_defaults(func=cmd_upload)

    recipe = commands.add_parser("recipe", parents=[common], help="fork and run merge recipes")
    recipe_commands = recipe.add_subparsers(dest="recipe_command", required=True, metavar="COMMAND",
                                            parser_class=_Parser)
    p = recipe_commands.add_parser("fork", parents=[common], help="fork a recipe version into a recipe of yours")
    p.add_argument("recipe_id", type=int)
    p.add_argument("--version", type=int, help="version number (default: latest)")
    p.add_argument("--title")
    p.add_argument("--visibility", choices=["public", "unlisted", "private"])
    p.set_defaults(func=cmd_recipe_fork)
    p = recipe_commands.add_parser("run", parents=[common], help="run a recipe's merge")
    p.add_argument("recipe_id", type=int)
    p.add_argument("--version", type=int, help="version number (default: latest)")
    p.add_argument("--wait", action="store_true", help="wait until the job finishes")
    p.add_argument("--timeout", type=float, default=3600)
    p.set_defaults(func=cmd_recipe_run)
    p = recipe_commands.add_parser("status", parents=[common], help="show a merge job")
    p.add_argument("job_id", type=int)
    p.add_argument("--wait", action="store_true", help="wait until the job finishes")
    p.add_argument("--timeout", type=float, default=3600)
    p.set_defaults(func=cmd_recipe_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except CliError as exc:
        print(f"mergeworks: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except config.ConfigFileError as exc:
        print(f"mergeworks: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("mergeworks: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
