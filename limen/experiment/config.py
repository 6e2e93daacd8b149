"""Experiment config files (TOML or YAML): what ``limen run CONFIG`` runs.

A config names the SFD and, optionally, everything ``UniversalExperimentLoop`` and ``run()``
take, so changing strategy is a one-word change of a file::

    sfd = "logreg_binary"
    name = "logreg-tpe"
    n_permutations = 200
    objective = "auc"
    direction = "maximize"

    [strategy]
    name = "tpe"
    n_startup_trials = 10

    [pruner]
    name = "median"

``key=value`` overrides (``strategy.n_startup_trials=5``) address nested keys with dots; values
are read as TOML literals (``5``, ``0.1``, ``true``, ``"text"``), bare words as strings.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

CONFIG_SUFFIXES = (".toml", ".yaml", ".yml")


@dataclass
class ExperimentConfig:
    """One experiment as a config file describes it (see the module docstring)."""

    sfd: str
    name: str | None = None
    strategy: Any = None
    pruner: Any = None
    objective: str | list[str] | None = None
    direction: str | list[str] | None = None
    storage: str | None = None
    experiment_dir: str | None = None
    n_permutations: int = 100
    seed: int | None = None
    test_mode: bool = False
    random_search: bool = True
    checkpoint_interval: int = 100
    feedback_interval: int = 100
    reducers: list[Any] = field(default_factory=list)

    def experiment_name(self) -> str:
        """The study name: ``name``, else the experiment directory's, else the SFD's."""
        if self.name:
            return self.name
        if self.experiment_dir:
            return Path(self.experiment_dir).name
        stem = Path(self.sfd).stem if self.sfd.endswith(".py") else self.sfd.rsplit(".", 1)[-1]
        return stem


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping a TOML or YAML file holds.

    Raises:
        FileNotFoundError: no such file.
        ValueError: another suffix, a syntax error, or a document that is not a mapping.
        ImportError: a YAML file without PyYAML installed.
    """
    path = Path(path)
    if path.suffix.lower() not in CONFIG_SUFFIXES:
        raise ValueError(f"A config file must end in .toml, .yaml or .yml. Got {str(path)!r}.")
    if not path.is_file():
        raise FileNotFoundError(f"Config file {str(path)!r} does not exist.")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path} is not valid TOML: {exc}") from exc
    else:
        document = _load_yaml(text, path)
    if not isinstance(document, Mapping):
        raise ValueError(f"{path} must hold a mapping of settings. Got {type(document).__name__}.")
    return dict(document)


def _load_yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError as exc:
        raise ImportError(
            f"Reading {path} needs PyYAML: pip install pyyaml (or use a .toml config)."
        ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc


def apply_overrides(document: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``document`` with each ``dotted.key=value`` override applied.

    A name where a table is expected becomes ``{"name": ...}``, so ``strategy=tpe`` and then
    ``strategy.n_startup_trials=5`` compose.
    """
    result = _deep_copy(document)
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"An override must read key=value. Got {override!r} instead.")
        path = key.strip().split(".")
        node = result
        for part in path[:-1]:
            child = node.get(part)
            if isinstance(child, str):
                child = {"name": child}
            elif not isinstance(child, dict):
                child = {}
            node[part] = child
            node = child
        node[path[-1]] = parse_literal(raw.strip())
    return result


def parse_literal(text: str) -> Any:
    """A TOML literal (``5``, ``0.1``, ``true``, ``"x"``, ``[1, 2]``); a bare word as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_config(
    source: str | Path | Mapping[str, Any], overrides: Iterable[str] = ()
) -> ExperimentConfig:
    """Read and check an experiment config from a file or a mapping, then apply overrides.

    Raises:
        ValueError: unknown keys (the message lists the accepted ones) or no ``sfd``.
    """
    document = source if isinstance(source, Mapping) else read_config_file(source)
    document = apply_overrides(document, overrides)
    accepted = [f.name for f in fields(ExperimentConfig)]
    unknown = sorted(set(document) - set(accepted))
    if unknown:
        raise ValueError(f"Unknown config keys {unknown}. Accepted keys: {accepted}.")
    if not document.get("sfd"):
        raise ValueError(
            'The config must name the SFD: sfd = "logreg_binary" (a foundational SFD, a module '
            "path or a .py file)."
        )
    return ExperimentConfig(**document)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
