"""Study configs: strict TOML, errors name the file and the key; the grid's cells."""
from __future__ import annotations

from pathlib import Path

import pytest

from brainleaks_lava.cli import main
from brainleaks_lava.errors import ConfigError
from brainleaks_lava.sweep.config import load_study

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO / "netx_models" / "mnist_eval_ann.h5"

BASE = f'''
[study]
name = "s"
[dataset]
name = "mnist"
[evaluator]
kind = "ann"
model = "{EVAL}"
[attacks]
names = ["bl2"]
'''


def _write(tmp_path, text):
    p = tmp_path / "study.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("extra, key", [
    ("[grid]\nsteps = [8, \"16\"]\n", "grid.steps[1]"),
    ("[grid]\nspeed = [1]\n", "grid.speed"),
    ("[target]\nhidden = -3\n", "target.hidden"),
    ("[target]\nreadout = \"psp\"\n", "target.readout"),
    ("[grid]\nweight_step = [1, 100]\n", "grid.weight_step[1]"),
    ("[grid]\ndefense = [\"none\", \"nope\"]\n", "grid.defense[1]"),
    ("[defenses.r]\nround_posterior = 2.0\n", "defenses.r.round_posterior"),
    ("[defenses.c]\nclip_counts = 3\n[grid]\ndefense = [\"c\"]\n", "defenses.c.clip_counts"),
    ("[defenses.d]\ndp = { noise = 1.0 }\n", "defenses.d.dp.noise"),
    ("[attacks.params.bl2]\nwhatever = 1\n", "attacks.params.bl2.whatever"),
    ("[attacks.params.bl2]\niterations = 0\n", "attacks.params.bl2"),
])
def test_errors_name_the_key(tmp_path, extra, key):
    p = _write(tmp_path, BASE + extra)
    with pytest.raises(ConfigError) as e:
        load_study(p)
    assert key in str(e.value) and str(p) in str(e.value)


def test_unknown_attack_and_top_level_key(tmp_path):
    with pytest.raises(ConfigError, match="attacks.names\\[0\\]"):
        load_study(_write(tmp_path, BASE.replace('names = ["bl2"]', 'names = ["bl9"]')))
    with pytest.raises(ConfigError, match="config.colour"):
        load_study(_write(tmp_path, "colour = 1\n" + BASE))


def test_cells_and_portfolio_names(tmp_path):
    s = load_study(_write(tmp_path, BASE.replace('names = ["bl2"]', 'names = ["bl2", "blenc-seed1"]')
                          + "[grid]\nsteps = [8, 16]\nweight_step = [1, 2, 4]\ndefense = [\"none\", \"r\"]\n"
                          "[defenses.r]\nround_posterior = 0.1\n"))
    cells = s.cells()
    assert len(cells) == 2 * 3 * 2
    assert {c["steps"] for c in cells} == {8, 16} and {c["defense"] for c in cells} == {"none", "r"}
    blenc = s.attacks[1]
    assert (blenc.method, blenc.seed_offset) == ("blenc", 1)


def test_shipped_studies_parse():
    ci = load_study(REPO / "experiments" / "sweep_ci.toml")
    assert len(ci.cells()) == 4
    # the realistic study points at ../shared/data/mnist; it parses where that directory exists
    real = REPO.parent / "shared" / "data" / "mnist"
    if real.is_dir():
        m = load_study(REPO / "experiments" / "sweep_mnist.toml")
        assert {c["steps"] for c in m.cells()} == {8, 16, 25}
        assert len({c["weight_step"] for c in m.cells()}) == 3 and len(m.seeds) == 2
        assert len(m.defense_axis) >= 3


def test_cli_exit_status_2(tmp_path, capsys):
    p = _write(tmp_path, BASE + "[grid]\nsteps = [0]\n")
    assert main(["sweep", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "grid.steps[0]" in err and len(err.strip().splitlines()) == 1
    assert main(["sweep", str(_write(tmp_path, BASE)), "--address", "x:1"]) == 2


def test_every_evaluator_kind_of_the_panel_is_accepted_and_others_are_refused(tmp_path):
    for kind in ("resnet", "reject", "snn"):
        study = load_study(_write(tmp_path, BASE.replace('kind = "ann"', f'kind = "{kind}"')))
        assert study.evaluator_kind == kind
    with pytest.raises(ConfigError, match=r"evaluator\.kind.*one of ann, snn, resnet, reject, got 'vit'"):
        load_study(_write(tmp_path, BASE.replace('kind = "ann"', 'kind = "vit"')))
