"""The README and docs/ stay true: short README, its commands parse (and the cheap ones run), links resolve,
the command table is the parser's, and the Layout page names every part of the package.

``python tests/test_docs.py`` prints the README's command table from the parser (paste it after a CLI change).
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PACKAGE = ROOT / "brainleaks_lava"
MAX_README_LINES = 200


# ---------------------------------------------------------------------------------------------- helpers
def _parser() -> argparse.ArgumentParser:
    from brainleaks_lava.cli import build_parser

    return build_parser()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, with its options added (the CLI adds them when a command is chosen)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            complete = getattr(action, "complete", None)
            return {name: complete(name) if complete else p for name, p in action.choices.items()}
    raise AssertionError("the brainleaks parser has no subcommands")


def _command_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help for a in action._choices_actions}
    raise AssertionError("the brainleaks parser has no subcommands")


def _arg_text(action: argparse.Action) -> str:
    if not action.option_strings:
        return action.metavar or action.dest.upper()
    opt = max(action.option_strings, key=len)
    if action.nargs == 0:
        return opt
    if action.metavar is not None:
        meta = action.metavar
    elif action.choices is not None:
        meta = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        meta = action.dest.upper()
    return f"{opt} {meta}"


def synopsis(name: str, sub: argparse.ArgumentParser) -> str:
    """``brainleaks NAME`` with its required options and positionals (what every call must give)."""
    grouped = {id(a) for g in sub._mutually_exclusive_groups if g.required for a in g._group_actions}
    parts = [f"brainleaks {name}"]
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction) or id(action) in grouped:
            continue
        if action.required or not action.option_strings:
            parts.append(_arg_text(action))
    for g in sub._mutually_exclusive_groups:
        if g.required:
            parts.append("(" + " | ".join(_arg_text(a) for a in g._group_actions) + ")")
    return " ".join(parts)


def command_table() -> str:
    """The README's command table: one row per subcommand of ``brainleaks --help``, in its order."""
    parser = _parser()
    helps = _command_help(parser)
    rows = ["| command | what it does |", "|---|---|"]
    for name, sub in _subparsers(parser).items():
        cell = synopsis(name, sub).replace("|", "\\|")
        rows.append(f"| `{cell}` | {helps[name]} |")
    return "\n".join(rows)


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)]


def _command_lines(body: str) -> list[str]:
    """Shell lines of a code block, backslash continuations joined."""
    lines, current = [], ""
    for raw in body.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append((current + line).strip())
        current = ""
    if current:
        lines.append(current.strip())
    return [line for line in lines if line]


def _brainleaks_args(line: str) -> list[str] | None:
    """The arguments given to ``brainleaks`` on a shell line: ``brainleaks ARGS`` or ``docker run ... brainleaks
    ARGS`` (the image's entry point is the CLI); None for any other line."""
    tokens = shlex.split(line, comments=True)
    if not tokens:
        return None
    if tokens[0] == "brainleaks":
        return tokens[1:]
    if tokens[:2] == ["docker", "run"] and "brainleaks" in tokens:
        return tokens[tokens.index("brainleaks") + 1:]
    return None


def readme_commands() -> list[list[str]]:
    """Every ``brainleaks`` command in the README's code blocks, as argument lists."""
    found = []
    for _lang, body in _fenced_blocks(README.read_text()):
        for line in _command_lines(body):
            args = _brainleaks_args(line)
            if args is not None:
                found.append(args)
    return found


def quick_start_commands() -> list[list[str]]:
    text = README.read_text()
    m = re.search(r"^## Quick start\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README has no '## Quick start' section"
    blocks = [body for lang, body in _fenced_blocks(m.group(1)) if lang in ("bash", "sh", "console", "")]
    assert blocks, "the Quick start has no shell block"
    return [args for line in _command_lines(blocks[0]) if (args := _brainleaks_args(line)) is not None]


def _run_cli(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("brainleaks")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "brainleaks_lava.cli"]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    return subprocess.run(cmd + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _out_paths(args: list[str]) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--out"]


def _quick_start_dir(tmp_path: Path) -> Path:
    """A fresh directory where the README's relative paths to the shipped files resolve."""
    (tmp_path / "netx_models").symlink_to(ROOT / "netx_models", target_is_directory=True)
    return tmp_path


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(md: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", md.read_text(), flags=re.S | re.M)
    seen: dict[str, int] = {}
    out = set()
    for m in re.finditer(r"^#{1,6} (.+?)\s*$", text, re.M):
        s = _slug(m.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def _doc_pages() -> list[Path]:
    return [README] + sorted(DOCS.glob("*.md"))


def _links(md: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", md.read_text(), flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)


# ---------------------------------------------------------------------------------------------- tests
def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n < MAX_README_LINES, f"README.md has {n} lines; move detail to docs/ (limit {MAX_README_LINES})"


def test_readme_has_its_sections_in_order():
    heads = re.findall(r"^## (.+)$", README.read_text(), re.M)
    want = ["Install", "The two commands", "Quick start", "Commands", "Results", "Where to read more"]
    assert [h for h in heads if h in want] == want, heads


def test_every_readme_command_parses():
    commands = readme_commands()
    assert len(commands) >= 5, commands  # the quick start alone has five
    for args in commands:
        try:
            _parser().parse_args(args)
        except SystemExit as e:  # argparse exits 0 for --help, 2 for a bad argument
            assert e.code in (0, None), f"README command does not parse: brainleaks {shlex.join(args)}"


def test_parse_check_catches_a_bad_command():
    # the check above can fail: an option the parser does not know exits with status 2
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(["attack", "--model", "m.net", "--method", "bl2", "--out", "r.h5", "--no-such-option"])
    assert e.value.code == 2


def test_command_table_is_the_parsers():
    text = README.read_text()
    m = re.search(r"^## Commands\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README has no '## Commands' section"
    rows = [line for line in m.group(1).splitlines() if line.startswith("|")]
    want = command_table().splitlines()
    listed = [re.match(r"\| `brainleaks ([\w-]+)", r).group(1) for r in rows[2:]]
    assert listed == list(_subparsers(_parser())), "the README's command table does not list every subcommand"
    assert rows == want, ("the README's command table differs from the parser; regenerate it with "
                          "'python tests/test_docs.py'")


def test_quick_start_info_and_attack_run(tmp_path):
    """The cheap quick-start commands, as written, in a fresh directory."""
    cwd = _quick_start_dir(tmp_path)
    cheap = [a for a in quick_start_commands() if a and a[0] in ("info", "attack")]
    assert [a[0] for a in cheap] == ["info", "attack"], cheap
    outputs = []
    for args in cheap:
        done = _run_cli(args, cwd, timeout=120)
        assert done.returncode == 0, f"brainleaks {shlex.join(args)}\n{done.stderr[-2000:]}"
        for out in _out_paths(args):
            assert (cwd / out).exists(), f"brainleaks {shlex.join(args)} wrote no {out}"
        outputs.append(done.stdout)
    assert "784-3000-10" in outputs[0] and "Lava replay: possible" in outputs[0], outputs[0]


@pytest.mark.slow
def test_quick_start_runs_in_order(tmp_path):
    """Every quick-start command, in order, in a fresh directory: exit 0, each --out written, the replay identical."""
    cwd = _quick_start_dir(tmp_path)
    commands = quick_start_commands()
    assert [a[0] for a in commands] == ["info", "attack", "evaluate", "replay", "audit"], commands
    for args in commands:
        done = _run_cli(args, cwd, timeout=600)
        assert done.returncode == 0, f"brainleaks {shlex.join(args)}\n{done.stderr[-2000:]}"
        for out in _out_paths(args):
            assert (cwd / out).exists(), f"brainleaks {shlex.join(args)} wrote no {out}"
        if args[0] == "replay":
            assert "agreement with the twin: 100.00%" in done.stdout, done.stdout
        if args[0] == "audit":
            out = cwd / _out_paths(args)[0]
            assert (out / "report.md").is_file() and (out / "audit.json").is_file()


def test_relative_links_resolve():
    pages = _doc_pages()
    assert len(pages) > 5, pages
    broken = []
    for page in pages:
        for link in _links(page):
            if re.match(r"[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
                continue
            path, _, frag = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                broken.append(f"{page.relative_to(ROOT)}: {link} (no such file)")
            elif frag and target.suffix == ".md" and frag not in _anchors(target):
                broken.append(f"{page.relative_to(ROOT)}: {link} (no heading #{frag} in {target.name})")
    assert not broken, "\n".join(broken)


def test_link_check_catches_a_broken_link(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Title\n\n[ok](p.md#title) [bad](missing.md) `[code](missing.md)`\n")
    assert _links(page) == ["p.md#title", "missing.md"]
    assert _anchors(page) == {"title"}


def test_every_readme_page_is_linked_from_the_readme():
    linked = {(README.parent / link.partition("#")[0]).resolve() for link in _links(README)}
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"docs pages not linked from the README: {missing}"


def test_no_machine_paths_in_docs():
    for page in _doc_pages():
        text = page.read_text()
        for bad in ("/work/", "/home/", "/Users/"):
            assert bad not in text, f"{page.relative_to(ROOT)} names a machine path ({bad}...)"


def _top_level_dirs() -> list[str]:
    """Top-level directories a user sees: tracked or new files, not ignored ones (git), else the file system."""
    try:
        files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                               capture_output=True, text=True, check=True, timeout=60).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", "runs", "dist", "build", "__pycache__", ".pytest_cache", ".hypothesis"}
        return sorted(p.name for p in ROOT.iterdir() if p.is_dir() and p.name not in skip
                      and not p.name.endswith(".egg-info"))
    return sorted({f.split("/", 1)[0] for f in files if "/" in f})


def test_layout_names_every_part_of_the_package():
    layout = (DOCS / "layout.md").read_text()
    subpackages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert "attacks" in subpackages and "cli.py" in modules  # the scan sees the package
    missing = [f"{name}/" for name in subpackages if f"`{name}/`" not in layout]
    missing += [name for name in modules if f"`{name}`" not in layout]
    missing += [f"{name}/ (top-level directory)" for name in _top_level_dirs() if f"`{name}/`" not in layout]
    assert not missing, f"docs/layout.md does not describe: {missing}"


if __name__ == "__main__":
    print(command_table())
