#!/usr/bin/env bash
# Set up everything unmask needs, idempotently: Debian packages, .venv, torch first, then the rest.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again (it skips what is done).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || {
  echo "error: unmask needs Python 3.11 (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2; exit 1; }

# Debian packages: ffmpeg (test clips with rotation metadata), tcmalloc (1.5x faster CPU training),
# chromium (the report's rendering test; playwright drives it, never downloading a browser).
need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -e /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ] || [ -e /usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4 ] || need+=(libtcmalloc-minimal4)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.unmask-installed
want=$(cat pyproject.toml requirements/*.txt | sha1sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv (torch first; a few minutes the first time)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip==26.3"
  # torch first, with exact pins: a looser pin pulls another build of several GB (docs/install.md).
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements/torch.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check -c requirements/constraints.txt -e ".[test,demo,docs]"
  echo "$want" > "$stamp"
fi

for lib in /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4; do
  [ -e "$lib" ] && export LD_PRELOAD="$lib" && break
done
export PATH="$PWD/.venv/bin:$PATH"
