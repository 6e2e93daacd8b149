"""Experiment config files (TOML/YAML), overrides and ``limen run CONFIG``."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from limen.cli import main
from limen.experiment.config import apply_overrides, load_config, read_config_file

EXAMPLES = Path(__file__).parent.parent / "examples" / "configs"


def test_toml_and_yaml_configs_read_the_same(tmp_path):
    (tmp_path / "a.toml").write_text(
        'sfd = "logreg_binary"\nn_permutations = 5\n[strategy]\nname = "tpe"\nseed = 1\n'
    )
    (tmp_path / "a.yaml").write_text(
        "sfd: logreg_binary\nn_permutations: 5\nstrategy:\n  name: tpe\n  seed: 1\n"
    )
    assert read_config_file(tmp_path / "a.toml") == read_config_file(tmp_path / "a.yaml")


def test_overrides_reach_nested_keys_and_compose_with_names():
    document = apply_overrides(
        {"sfd": "x", "strategy": "tpe"},
        ["strategy.n_startup_trials=5", "n_permutations=12", "pruner=median", "seed=true"],
    )
    assert document["strategy"] == {"name": "tpe", "n_startup_trials": 5}
    assert document["n_permutations"] == 12
    assert document["pruner"] == "median"
    assert document["seed"] is True


def test_unknown_keys_are_refused_with_the_accepted_ones():
    with pytest.raises(ValueError, match=r"Unknown config keys \['strategi'\].*'strategy'"):
        load_config({"sfd": "x", "strategi": "tpe"})
    with pytest.raises(ValueError, match="must name the SFD"):
        load_config({"strategy": "tpe"})


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.*")), ids=lambda p: p.name)
def test_every_example_config_is_valid(path):
    from limen.experiment import ParamDomain, make_strategy
    from limen.sfd.foundational_sfd import logreg_binary

    config = load_config(path)
    strategy = make_strategy(config.strategy, ParamDomain(logreg_binary.params()))
    assert strategy.name == config.strategy["name"]


def test_limen_run_takes_a_config_and_overrides(tmp_path, capsys):
    config = tmp_path / "exp.toml"
    config.write_text(
        f'sfd = "logreg_binary"\nexperiment_dir = "{tmp_path / "out"}"\nn_permutations = 3\n'
        'test_mode = true\nobjective = "auc"\n[strategy]\nname = "random"\n'
    )
    code = main(
        [
            "run",
            str(config),
            "--no-progress",
            "--set",
            "n_permutations=4",
            "--strategy",
            "tpe",
            "--set",
            "strategy.n_startup_trials=2",
        ]
    )

    assert code == 0
    study = optuna.load_study(study_name="out", storage=f"sqlite:///{tmp_path / 'out/study.db'}")
    assert len(study.trials) >= 4
    assert study.user_attrs["limen:strategy"]["name"] == "tpe"
    assert study.user_attrs["limen:strategy"]["n_startup_trials"] == 2


def test_limen_run_needs_a_config_or_an_sfd(capsys):
    assert main(["run"]) == 2
    assert "config file or --sfd" in capsys.readouterr().err


def test_limen_resume_rebuilds_the_stored_strategy(tmp_path):
    out = tmp_path / "out"
    base = ["--sfd", "logreg_binary", "--test-mode", "--experiment-dir", str(out), "--no-progress"]
    assert main(["run", *base, "-n", "3", "--strategy", "qmc", "--set", "strategy.seed=1"]) == 0
    assert main(["resume", str(out), "-n", "5", "--no-progress"]) == 0

    study = optuna.load_study(study_name="out", storage=f"sqlite:///{out / 'study.db'}")
    assert study.user_attrs["limen:strategy"] == {"name": "qmc", "seed": 1}
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 5
