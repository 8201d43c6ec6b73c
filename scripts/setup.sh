#!/usr/bin/env bash
# Create .venv with Python 3.10 and install brainleaks-lava (editable, with its test extra).
# Idempotent: a second run only checks a stamp and returns in a second.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.brainleaks-installed"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    echo "setup: .venv is up to date"
    exit 0
fi

# shellcheck source=scripts/python310.sh
source scripts/python310.sh

if ! PY="$(find_python310)"; then
    no_python310 setup
    exit 2
fi

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)'; then
    echo "setup: creating $VENV with $PY"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
fi
echo "setup: installing brainleaks-lava and its test extra into $VENV (first run takes a few minutes)"
"$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
"$VENV/bin/python" -m pip install --quiet -e ".[test]" 2>&1 | grep -v "is ignored" || true
"$VENV/bin/python" -c "import brainleaks_lava, lava.lib.dl.slayer, lava.lib.dl.netx" 2>&1 | grep -v -i prophesee || true
"$VENV/bin/python" -c "import brainleaks_lava, lava.lib.dl.netx" >/dev/null 2>&1 || { echo "setup: install failed" >&2; exit 1; }
echo "$want" > "$STAMP"
echo "setup: done"
