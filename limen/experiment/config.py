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

from limen.errors import InvalidParameterError, LimenError, MissingDependencyError
from limen.utils.validation import Interval, Predicate, StrOptions, validate_params

__all__ = [
    "CONFIG_SUFFIXES",
    "ConfigFileError",
    "ConfigFileNotFoundError",
    "ExperimentConfig",
    "apply_overrides",
    "load_config",
    "parse_literal",
    "read_config_file",
]

CONFIG_SUFFIXES = (".toml", ".yaml", ".yml")


class ConfigFileError(LimenError, ValueError):
    """A config file cannot be read: another suffix, a syntax error, not a mapping."""


class ConfigFileNotFoundError(ConfigFileError, FileNotFoundError):
    """The config file named does not exist."""


def _names(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)
    )


def _named_table(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, Mapping) and "name" in value)


_TEXT = Predicate(lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty str")
_NAMES = Predicate(_names, "a str or a non-empty list of str")
_TABLE = Predicate(_named_table, "a name or a table with a 'name' key")
#: What each key of a config file accepts; a wrong type names the key.
CONFIG_CONSTRAINTS: dict[str, list[Any]] = {
    "sfd": [_TEXT],
    "name": [_TEXT, None],
    "strategy": [_TABLE, None],
    "pruner": [_TABLE, None],
    "objective": [_NAMES, None],
    "direction": [StrOptions(["maximize", "minimize"]), _NAMES, None],
    "storage": [_TEXT, None],
    "experiment_dir": [_TEXT, None],
    "n_permutations": [Interval(int, 1, None)],
    "seed": [int, None],
    "test_mode": ["boolean"],
    "random_search": ["boolean"],
    "checkpoint_interval": [Interval(int, 1, None)],
    "feedback_interval": [Interval(int, 1, None)],
    "reducers": [Predicate(lambda v: isinstance(v, list), "a list of reducer tables")],
}


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
        ConfigFileNotFoundError: no such file (a ``FileNotFoundError``).
        ConfigFileError: another suffix, a syntax error, text that is not UTF-8, or a document
            that is not a mapping (a ``ValueError``).
        MissingDependencyError: a YAML file without PyYAML installed.
    """
    path = Path(path)
    if path.suffix.lower() not in CONFIG_SUFFIXES:
        raise ConfigFileError(
            f"A config file must end in .toml, .yaml or .yml. Got {str(path)!r} instead."
        )
    if not path.is_file():
        raise ConfigFileNotFoundError(
            f"Config file {str(path)!r} does not exist or is not a file: check the path."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"{path} is not UTF-8 text ({exc.reason}).") from None
    if path.suffix.lower() == ".toml":
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigFileError(f"{path} is not valid TOML: {exc}") from None
    else:
        document = _load_yaml(text, path)
    if not isinstance(document, Mapping):
        raise ConfigFileError(
            f"{path} must hold a mapping of settings (key = value lines). "
            f"Got a {type(document).__name__} instead."
        )
    return dict(document)


def _load_yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError as exc:
        raise MissingDependencyError(
            f"Reading {path} needs PyYAML: pip install pyyaml (or use a .toml config)."
        ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None


def apply_overrides(document: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``document`` with each ``dotted.key=value`` override applied.

    A name where a table is expected becomes ``{"name": ...}``, so ``strategy=tpe`` and then
    ``strategy.n_startup_trials=5`` compose.
    """
    result = _deep_copy(document)
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key.strip():
            raise InvalidParameterError(
                f"An override (--set) must read key=value. Got {override!r} instead."
            )
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
        InvalidParameterError: unknown keys (the message lists the accepted ones), no ``sfd``,
            or a value of the wrong type (the message names the key).
    """
    document = source if isinstance(source, Mapping) else read_config_file(source)
    document = apply_overrides(document, overrides)
    accepted = [f.name for f in fields(ExperimentConfig)]
    unknown = sorted(set(document) - set(accepted))
    if unknown:
        raise InvalidParameterError(f"Unknown config keys {unknown}. Accepted keys: {accepted}.")
    if not document.get("sfd"):
        raise InvalidParameterError(
            'The config must name the SFD: sfd = "logreg_binary" (a foundational SFD, a module '
            "path or a .py file)."
        )
    validate_params(CONFIG_CONSTRAINTS, document, "the experiment config")
    return ExperimentConfig(**document)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
