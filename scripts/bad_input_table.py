"""Run the real ``brainleaks`` CLI on every kind of bad input and print a markdown table.

    .venv/bin/python scripts/bad_input_table.py [--keep DIR]

Each case (see ``tests/reliability/bad_cases.py``, shared with the tests) builds its bad file or argument
in a temporary directory beside small valid files, runs ``python -m brainleaks_lava.cli`` in a
subprocess and records the exit status and the line on stderr (progress bars left out). Every row must show
exit 2 (130 / 143 for an interruption), a one-line message naming the file or field, every file of the work
directory byte-identical afterwards (no temporary file, no output) and no process left running; the script
exits 1 otherwise.
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
            before = bad_cases.snapshot(ws.root)
            out = bad_cases.run_subprocess(cmd, ws.root, case=case)
            issues = bad_cases.problems(out, names, case.expected_code)
            changed = bad_cases.changes(before, bad_cases.snapshot(ws.root))
            if case.signal is not None:  # an interrupted run keeps the stages it completed
                changed = [k for k in changed if not k.startswith("interrupted_run/") or k.endswith(".tmp")]
            if changed:
                issues.append(f"files changed, appeared or vanished: {changed}")
            first = out.lines[0] if out.lines else ""
            if issues:
                failed.append((case.name, issues))
            how = {2: " (SIGINT once Lava runs)", 15: " (SIGTERM once Lava runs)"}.get(case.signal, "")
            how += f" (files limited to {case.fsize} bytes: a full disk)" if case.fsize else ""
            rows.append(f"| {case.category} | {case.name} | `{_cell('brainleaks ' + shlex.join(cmd))}`{how} | "
                        f"{out.code} | {'yes' if not changed else 'NO'} | {_cell(first)} |")
    print("| category | case | command | exit code | files intact | stderr (the one line) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    for name, issues in failed:
        print(f"FAILED {name}: {'; '.join(issues)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
