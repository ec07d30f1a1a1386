"""Where the CLI keeps its endpoint and API key.

`~/.config/mergeworks/config.json` (or `$XDG_CONFIG_HOME/mergeworks/…`, or
`$MERGEWORKS_CONFIG_DIR/config.json`), written atomically with mode 0600 in a
0700 folder, because it holds a credential. Flags beat environment variables
(`MERGEWORKS_ENDPOINT`, `MERGEWORKS_TOKEN`), which beat the file.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ENDPOINT = "http://127.0.0.1:8000"


class ConfigFileError(RuntimeError):
    pass


def config_dir() -> Path:
    if explicit := os.environ.get("MERGEWORKS_CONFIG_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mergeworks"


def config_path() -> Path:
    return config_dir() / "config.json"


def load_file() -> dict:
    path = config_path()
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigFileError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigFileError(f"{path} is not valid JSON ({exc}); fix it or run `mergeworks login` again") from exc
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path} must hold a JSON object")
    return data


def save_file(data: dict) -> Path:
    folder = config_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = config_path()
    tmp = folder / f".config.json.{os.getpid()}.tmp"
    # Created 0600 from the start: the key is never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


@dataclass(frozen=True)
class Settings:
    endpoint: str
    token: str | None


def resolve_settings(*, endpoint: str | None = None, token: str | None = None) -> Settings:
    stored = load_file()
    stored_endpoint = (stored.get("endpoint") or DEFAULT_ENDPOINT).rstrip("/")
    chosen = (endpoint or os.environ.get("MERGEWORKS_ENDPOINT") or stored_endpoint).rstrip("/")
    # The stored key belongs to the stored endpoint: never send it to another hub.
    stored_token = stored.get("token") if chosen == stored_endpoint else None
    chosen_token = token or os.environ.get("MERGEWORKS_TOKEN") or stored_token or None
    return Settings(endpoint=chosen, token=chosen_token)
