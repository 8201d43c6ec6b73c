"""Run the real ``brainleaks`` CLI on every kind of bad input and print a markdown table.

    .venv/bin/python scripts/bad_input_table.py [--keep DIR]

Each case (see ``tests/reliability/bad_cases.py``, shared with the tests) builds its bad file or argument
in a temporary directory beside small valid files, runs ``python -m brainleaks_lava.cli`` in a
subprocess and records the exit status and the first line on stderr. Every row must show exit 2 and
a one-line message naming the file or field; the script exits 1 otherwise.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

import bad_cases  # noqa: E402


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", default=None, help="build the cases in this directory and keep it")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="brainleaks-bad-input-") as tmp:
        ws = bad_cases.Workspace(Path(args.keep) if args.keep else Path(tmp))
        rows, failed = [], []
        for case in bad_cases.CASES:
            cmd, names = case.build(ws)
            out = bad_cases.run_subprocess(cmd, ws.root)
            first = out.lines[0] if out.lines else ""
            issues = bad_cases.problems(out, names)
            if issues:
                failed.append((case.name, issues))
            rows.append(f"| {case.name} | `{_cell('brainleaks ' + shlex.join(cmd))}` | {out.code} | "
                        f"{_cell(first)} |")
    print("| case | command | exit code | stderr first line |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    for name, issues in failed:
        print(f"FAILED {name}: {'; '.join(issues)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
