#!/usr/bin/env bash
# Idempotent set-up behind the README's two commands.
#   scripts/setup.sh app   virtual environment + the project and its dependencies
#   scripts/setup.sh test  the same + test dependencies + Debian's Chromium for the browser test
# Re-running is cheap: a stamp keyed on pyproject.toml skips pip when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-app}
case "$profile" in app|test) ;; *) echo "usage: $0 [app|test]" >&2; exit 2 ;; esac
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

"$PY" - <<'PYCHECK'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"embgeo needs Python 3.11 or newer; {sys.executable} is {sys.version.split()[0]}")
PYCHECK

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
stamp="$VENV/.embgeo-$profile-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "embgeo: installing dependencies into $VENV ($profile; a few minutes the first time)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # The CPU build of torch first: asking for plain 'torch' would pull several GB of CUDA packages.
    "$VENV/bin/python" -m pip install -q "torch==2.13.0"
    if [ "$profile" = test ]; then extra="[test]"; else extra=""; fi
    "$VENV/bin/python" -m pip install -q -e ".$extra"
    touch "$stamp"
fi

if [ "$profile" = test ] && ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "embgeo: installing Debian's chromium for the browser test"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "embgeo: chromium is not installed and this user cannot apt-get it; the browser test will be skipped" >&2
    fi
fi
