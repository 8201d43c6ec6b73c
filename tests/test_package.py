"""The installable package: brainleaks_lava.resources finds the shipped models and configs, the wheel carries them
(with the vendored MNIST subset, LICENSE and the third-party notices), and they resolve from an installed copy.

The full check, a fresh venv outside the checkout running ``brainleaks demo``, is scripts/wheel_check.sh
(``make wheel-check``, run by .ci/run); these tests build the wheel (slow) but create no venv.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from brainleaks_lava import resources
from brainleaks_lava.errors import InputError
from brainleaks_lava.report.config import load_config

ROOT = Path(__file__).resolve().parents[1]
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _repo_models() -> list[str]:
    return sorted(p.name for p in (ROOT / "netx_models").iterdir() if p.suffix in (".net", ".h5"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_resources_find_every_shipped_model_and_config_in_the_checkout():
    assert resources.models_dir().samefile(ROOT / "netx_models")
    assert resources.experiments_dir().samefile(ROOT / "experiments")
    names = resources.shipped_models()
    assert names == _repo_models() and "mnist_snn.net" in names and "mnist_eval_snn.h5" in names
    for name in names:
        assert resources.shipped_model(name).samefile(ROOT / "netx_models" / name)
        assert resources.shipped_model(Path(name).stem) == resources.shipped_model(name)  # the stem names it too
    configs = resources.experiment_configs()
    assert configs == sorted(p.stem for p in (ROOT / "experiments").glob("*.toml")) and "demo" in configs
    for name in configs:
        assert resources.experiment_config(name).samefile(ROOT / "experiments" / f"{name}.toml")
        assert resources.experiment_config(f"{name}.toml") == resources.experiment_config(name)
    assert resources.demo_config().samefile(ROOT / "experiments" / "demo.toml")


@pytest.mark.parametrize("name", ["mnist_snn.json", "nope.net", "../pyproject.toml", "netx_models/mnist_snn.net",
                                  str(ROOT / "netx_models" / "mnist_snn.net"), "", 3])
def test_shipped_model_refuses_anything_but_a_shipped_model_name(name):
    with pytest.raises(InputError) as e:
        resources.shipped_model(name)
    if isinstance(name, str):
        assert "mnist_snn.net" in str(e.value)  # the message lists the shipped models


@pytest.mark.parametrize("name", ["nope", "../experiments/demo", "demo.json"])
def test_experiment_config_refuses_unknown_names(name):
    with pytest.raises(InputError, match="demo"):
        resources.experiment_config(name)


def test_missing_shipped_directories_are_one_clear_error(monkeypatch, tmp_path, capsys):
    """An installation with neither the package data nor a checkout beside it (a broken install): one error naming
    where it looked, ModelFileError for the models, ConfigError for the configs (exit status 2 from the CLI)."""
    from brainleaks_lava.cli import main
    from brainleaks_lava.errors import ConfigError, ModelFileError

    monkeypatch.setattr(resources, "_checkout_root", lambda: None)  # as in an installed copy without _shipped/
    with pytest.raises(ModelFileError, match=r"netx_models directory is missing .*_shipped/netx_models"):
        resources.shipped_model("mnist_snn")
    with pytest.raises(ConfigError, match=r"experiments directory is missing .*_shipped/experiments"):
        resources.demo_config()
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert "experiments directory is missing" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_demo_config_resolves_shipped_models_that_exist():
    from brainleaks_lava.report.runner import demo_config

    assert demo_config() == resources.demo_config()
    cfg = load_config(demo_config())
    files = [t.model for t in cfg.targets.values()] + [e.model for e in cfg.evaluators.values()]
    assert len(files) == 4 and all(f is not None and f.is_file() for f in files)
    assert {f.name for f in files} <= set(resources.shipped_models())
    assert all(f.parent.samefile(resources.models_dir()) for f in files)


def test_pyproject_lists_every_subpackage_and_maps_the_shipped_directories():
    """The package list is explicit (the shipped directories are mapped into it); a subpackage missing from it
    would be left out of the wheel."""
    tool = PYPROJECT["tool"]["setuptools"]
    listed = set(tool["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "brainleaks_lava").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert on_disk - listed == set(), "subpackages missing from [tool.setuptools] packages in pyproject.toml"
    mapped = tool["package-dir"]
    assert mapped == {"brainleaks_lava._shipped.netx_models": "netx_models",
                      "brainleaks_lava._shipped.experiments": "experiments"}
    for pkg in listed:
        d = ROOT / mapped[pkg] if pkg in mapped else ROOT.joinpath(*pkg.split("."))
        assert d.is_dir(), f"{pkg}: {d} does not exist"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE", "THIRD_PARTY_NOTICES.md"]
    assert any(r.startswith("pandas") for r in PYPROJECT["project"]["optional-dependencies"]["notebook"])


def test_license_and_notices():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "the brainleaks_lava authors" in text and "2026" in text
    notices = (ROOT / "THIRD_PARTY_NOTICES.md").read_text()
    for needle in ("Yann LeCun", "Corinna Cortes", "CC BY-SA 3.0", "CC BY-SA 4.0", "AT&T", "brainleaks_lava/data/vendored/mnist"):
        assert needle in notices
    assert "CC BY-SA 3.0" in (ROOT / "brainleaks_lava/data/vendored/mnist/README.md").read_text()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built (no build isolation, offline) from a copy of what the build reads, so that the checkout
    gets no build/ directory and no earlier build's leftovers get in."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for f in ("pyproject.toml", "README.md", "LICENSE", "THIRD_PARTY_NOTICES.md"):
        shutil.copy2(ROOT / f, src / f)
    for d in ("brainleaks_lava", "netx_models", "experiments"):
        shutil.copytree(ROOT / d, src / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(out)], check=True, cwd=tmp, capture_output=True, timeout=600)
    (whl,) = out.glob("brainleaks_lava-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_carries_models_configs_vendored_mnist_and_licenses(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for p in (ROOT / "netx_models").iterdir():  # every file, the .net's JSON sidecar included, byte for byte
            assert _sha(z.read(f"brainleaks_lava/_shipped/netx_models/{p.name}")) == _sha(p.read_bytes())
        shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith("brainleaks_lava/_shipped/netx_models/")}
        assert shipped == {p.name for p in (ROOT / "netx_models").iterdir()}
        for p in (ROOT / "experiments").glob("*.toml"):
            assert z.read(f"brainleaks_lava/_shipped/experiments/{p.name}") == p.read_bytes()
        for p in (ROOT / "brainleaks_lava/data/vendored/mnist").iterdir():
            assert _sha(z.read(f"brainleaks_lava/data/vendored/mnist/{p.name}")) == _sha(p.read_bytes())
        for p in (ROOT / "brainleaks_lava").rglob("*.py"):  # every module of the package
            if "__pycache__" not in p.parts:
                assert p.relative_to(ROOT).as_posix() in names
        dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        for f in ("LICENSE", "THIRD_PARTY_NOTICES.md"):
            assert z.read(f"{dist_info}/licenses/{f}") == (ROOT / f).read_bytes()
        meta = z.read(f"{dist_info}/METADATA").decode()
        assert "License-Expression: BSD-3-Clause" in meta and "Provides-Extra: notebook" in meta
        assert "brainleaks = brainleaks_lava.cli:entry" in z.read(f"{dist_info}/entry_points.txt").decode()
        # nothing of the checkout besides the package: no tests, no top-level netx_models/ or experiments/
        assert {n.split("/")[0] for n in names} == {"brainleaks_lava", dist_info}


@pytest.mark.slow
def test_unpacked_wheel_finds_its_own_models_and_demo_config(wheel, tmp_path):
    """The wheel's files, unpacked as pip installs them and imported from there (cwd elsewhere): resources and
    the demo config name the installed files, not the checkout's."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    code = """if True:
        import sys
        from pathlib import Path
        import brainleaks_lava
        from brainleaks_lava import resources
        from brainleaks_lava.report.config import load_config
        from brainleaks_lava.report.runner import demo_config
        site = Path(sys.argv[1]).resolve()
        assert Path(brainleaks_lava.__file__).resolve().is_relative_to(site), brainleaks_lava.__file__
        assert resources.models_dir().resolve() == site / "brainleaks_lava/_shipped/netx_models"
        cfg = load_config(demo_config())
        files = [t.model for t in cfg.targets.values()] + [e.model for e in cfg.evaluators.values()]
        assert files and all(f.is_file() and f.resolve().is_relative_to(site) for f in files), files
        for name in resources.shipped_models():
            assert resources.shipped_model(name).resolve().is_relative_to(site)
        print(len(resources.shipped_models()), len(resources.experiment_configs()))
    """
    env = {**os.environ, "PYTHONPATH": str(site)}  # before the editable install's finder of the checkout
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    r = subprocess.run([sys.executable, "-c", code, str(site)], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(len(_repo_models())), str(len(list((ROOT / "experiments").glob("*.toml"))))]
