#!/usr/bin/env bash
# Create .venv and install the project with its test tools, once. Re-running is cheap:
# a stamp file records the pyproject.toml it installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.installed-$(cat pyproject.toml infra/scripts/bootstrap.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ]; then exit 0; fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first and pinned: the CPU wheel on this machine's disk, not a multi-GB CUDA build.
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
# CLIP's BPE merges file for manage.py hub_base_configs. Without --no-deps this wheel
# would pull torchvision and a CUDA torch in place of the pinned CPU build.
.venv/bin/pip install -q --disable-pip-version-check --no-deps open_clip_torch==3.3.0
if ! command -v chromium >/dev/null && [ -z "${SKIP_BROWSER_INSTALL:-}" ]; then
  if command -v apt-get >/dev/null; then
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/dev/null \
      || echo "warning: could not install chromium; browser tests will fail" >&2
  fi
fi
rm -f .venv/.installed-*
touch "$stamp"
