# Sourced by scripts/setup.sh and scripts/wheel_check.sh: find_python310 prints the path of a Python 3.10
# interpreter (lava-nc 0.10 and lava-dl 0.6 require >=3.10,<3.11), or returns 1 if there is none.
# Looked for, in this order: $PYTHON310, python3.10 on PATH, the newest pyenv 3.10.x.

find_python310() {
    local c
    for c in "${PYTHON310:-}" python3.10; do
        if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 &&
           "$c" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; then
            command -v "$c"; return 0
        fi
    done
    local root
    if command -v pyenv >/dev/null 2>&1; then root="$(pyenv root)"; else root="${PYENV_ROOT:-$HOME/.pyenv}"; fi
    for c in $(ls -d "$root"/versions/3.10.*/bin/python 2>/dev/null | sort -V -r); do
        if [ -x "$c" ]; then echo "$c"; return 0; fi
    done
    return 1
}

# the message for when find_python310 found nothing; $1 names the caller ("setup", "wheel-check")
no_python310() {
    echo "$1: no Python 3.10 found (lava-nc 0.10 and lava-dl 0.6 require Python >=3.10,<3.11)." >&2
    echo "$1: install one, e.g. 'pyenv install 3.10.13', or set PYTHON310=/path/to/python3.10, then rerun." >&2
}
