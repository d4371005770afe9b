#!/usr/bin/env bash
# Regenerate requirements.lock: every runtime dependency of pyproject.toml
# ([project].dependencies) and the build backend ([build-system].requires),
# pinned to one version each with the sha256 of every file PyPI has for it.
#
# Run it after changing either list in pyproject.toml, then commit both files:
#
#   .venv/bin/pip install -e '.[dev]'   # brings pip-tools
#   scripts/lock.sh                     # rewrites requirements.lock
#   scripts/lock.sh --upgrade           # the same, moving every pin to the newest allowed
#
# The lock is resolved for the image's interpreter: CPython 3.11 on Linux x86_64,
# so run it with that Python (set PYTHON to point at another one). It resolves
# against PyPI alone: local pip settings (extra indexes, find-links, constraint
# files) are ignored, so the same pyproject.toml gives the same lock anywhere.
# Extra arguments go to pip-compile.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
if ! "$PYTHON" -c 'import sys, platform
ok = sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"
sys.exit(0 if ok else 1)'; then
  echo "lock.sh: $PYTHON is not CPython 3.11 on Linux x86_64, the platform the lock is for" >&2
  exit 1
fi
if ! "$PYTHON" -c "import piptools" >/dev/null 2>&1; then
  echo "lock.sh: pip-tools is not installed for $PYTHON (pip install -e '.[dev]')" >&2
  exit 1
fi

env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_CONSTRAINT \
  PIP_CONFIG_FILE=/dev/null \
  "$PYTHON" -m piptools compile \
  --quiet \
  --index-url https://pypi.org/simple \
  --no-emit-index-url \
  --no-emit-find-links \
  --generate-hashes \
  --strip-extras \
  --allow-unsafe \
  --all-build-deps \
  --output-file requirements.lock \
  "$@" \
  pyproject.toml
echo "lock.sh: wrote requirements.lock"
