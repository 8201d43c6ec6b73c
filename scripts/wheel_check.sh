#!/usr/bin/env bash
# The installed wheel runs the demo as the checkout does (issue 32's acceptance check; `make wheel-check`, .ci/run).
#
#  1. builds dist/brainleaks_lava-*.whl (`make wheel`);
#  2. creates a fresh venv in a temporary directory outside the checkout with the Python 3.10 that
#     scripts/setup.sh uses, and `pip install`s the wheel there (its dependencies from the package index);
#  3. from another temporary directory, with no PYTHONPATH, checks that brainleaks_lava is imported from that
#     venv (not from the checkout) and runs `brainleaks demo --out <tmp>/installed`;
#  4. runs the same demo from the checkout (`make demo`'s command, .venv/bin/brainleaks demo, into
#     <tmp>/checkout) and compares the table lines (those starting with "|") of the two report.md files.
#
# Prints what it compared; exits 1 if the tables differ, 2 if no Python 3.10 is found. The temporary
# directory is removed at the end unless KEEP_WHEEL_CHECK=1 (then its path is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

# shellcheck source=scripts/python310.sh
source scripts/python310.sh
if ! PY="$(find_python310)"; then
    no_python310 wheel-check
    exit 2
fi

t0=$SECONDS
elapsed() { echo "$((SECONDS - t0)) s"; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/brainleaks-wheel-check.XXXXXX")"
case "$tmp" in "$repo"/*) echo "wheel-check: the temporary directory $tmp lies inside the checkout" >&2; exit 2;; esac
if [ "${KEEP_WHEEL_CHECK:-0}" = 1 ]; then
    trap 'echo "wheel-check: kept $tmp"' EXIT
else
    trap 'rm -rf "$tmp"; echo "wheel-check: removed $tmp, $(elapsed)"' EXIT
fi

echo "wheel-check: building the wheel"
make --no-print-directory wheel >/dev/null
wheels=(dist/brainleaks_lava-*.whl)
if [ "${#wheels[@]}" -ne 1 ]; then
    echo "wheel-check: expected one wheel in dist/, found ${#wheels[@]}: ${wheels[*]}" >&2
    exit 1
fi
wheel="$repo/${wheels[0]}"
echo "wheel-check: $wheel ($(du -h "$wheel" | cut -f1)), $(elapsed)"

echo "wheel-check: installing it into a fresh venv in $tmp/venv ($PY)"
"$PY" -m venv "$tmp/venv"
if ! "$tmp/venv/bin/python" -m pip install --quiet "$wheel" >"$tmp/pip.log" 2>&1; then
    grep -v "is ignored" "$tmp/pip.log" | tail -n 40 >&2
    echo "wheel-check: pip install $wheel failed" >&2
    exit 1
fi
echo "wheel-check: installed, $(elapsed)"

mkdir "$tmp/cwd"
cd "$tmp/cwd"
# nothing of the checkout on the path: the package, its models and its configs must come from the venv
env -u PYTHONPATH "$tmp/venv/bin/python" - "$tmp/venv" <<'EOF'
import sys
from pathlib import Path

import brainleaks_lava
from brainleaks_lava import resources

venv = Path(sys.argv[1]).resolve()
found = {"package": Path(brainleaks_lava.__file__).resolve(), "models": resources.models_dir().resolve(),
         "demo config": resources.demo_config().resolve()}
for what, p in found.items():
    print(f"wheel-check: installed {what}: {p}")
    if venv not in p.parents:
        sys.exit(f"wheel-check: the installed {what} {p} is not inside the venv {venv}")
EOF
echo "wheel-check: brainleaks demo from the installed wheel (cwd $tmp/cwd)"
env -u PYTHONPATH "$tmp/venv/bin/brainleaks" demo --out "$tmp/installed" >"$tmp/installed.log" 2>&1 ||
    { tail -n 30 "$tmp/installed.log" >&2; echo "wheel-check: the installed demo failed" >&2; exit 1; }
echo "wheel-check: done, $(elapsed)"

cd "$repo"
bash scripts/setup.sh >/dev/null  # the checkout's .venv (a second run only checks its stamp)
echo "wheel-check: the same demo from the checkout (.venv/bin/brainleaks demo, as make demo)"
.venv/bin/brainleaks demo --out "$tmp/checkout" >"$tmp/checkout.log" 2>&1 ||
    { tail -n 30 "$tmp/checkout.log" >&2; echo "wheel-check: the checkout's demo failed" >&2; exit 1; }
echo "wheel-check: done, $(elapsed)"

grep '^|' "$tmp/installed/report.md" >"$tmp/installed.tables" || true
grep '^|' "$tmp/checkout/report.md" >"$tmp/checkout.tables" || true
if ! grep -q '^| attack |' "$tmp/checkout.tables"; then
    echo "wheel-check: the checkout's report.md has no '| attack |' table; nothing to compare" >&2
    exit 1
fi
echo "wheel-check: compared the $(wc -l <"$tmp/checkout.tables") table lines of report.md"
echo "  installed: $tmp/installed/report.md"
echo "  checkout:  $tmp/checkout/report.md"
if ! diff -u --label "checkout report.md" --label "installed report.md" "$tmp/checkout.tables" "$tmp/installed.tables"; then
    echo "wheel-check: FAILED: the installed wheel's demo report differs from the checkout's ($(elapsed))" >&2
    exit 1
fi
sed 's/^/  /' "$tmp/installed.tables"
echo "wheel-check: OK: identical report tables ($(elapsed) in all)"
