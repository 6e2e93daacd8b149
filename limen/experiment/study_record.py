"""What a study holds about its experiment, as one typed record.

The loop writes a ``StudyRecord`` into the study's user attrs when it creates the study
(``to_attrs``); resume, the Trainer, the Log, the CLI and the dashboard read it back
(``from_attrs``) instead of looking keys up one by one. A study Limen did not create reads as a
record whose fields are None (``is_limen`` is False). Mutable state that changes during a run
(the search and feedback state, the acceptance report) is not part of the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from limen.experiment import study_keys as keys

__all__ = ["StudyRecord"]

# Field name -> study user attr key, in the order the loop writes them.
_KEYS = {
    "sfd_module": keys.SFD_MODULE,
    "sfd_source_hash": keys.SFD_SOURCE_HASH,
    "data_fingerprint": keys.DATA_FINGERPRINT,
    "limen_version": keys.VERSION,
    "space_hash": keys.SPACE_HASH,
    "strategy": keys.STRATEGY,
    "pruner": keys.PRUNER,
    "objective": keys.OBJECTIVE,
    "codec": keys.CODEC,
    "context_params": keys.CONTEXT_PARAMS,
    "n_permutations": keys.N_PERMUTATIONS,
    "test_mode": keys.TEST_MODE,
    "feedback": keys.FEEDBACK,
}


@dataclass(frozen=True)
class StudyRecord:
    """What resume and the readers need to know about the experiment a study holds.

    Attributes:
        sfd_module: The SFD's module name (``limen.sfd.foundational_sfd.logreg_binary``).
        sfd_source_hash: SHA-256 of the SFD's source file, to tell an edited SFD.
        data_fingerprint: SHA-256 of the data the rounds ran on.
        limen_version: The Limen version that created the study.
        space_hash: Hash of the parameter space; present in every study Limen created.
        strategy: The search strategy's config, enough to rebuild it (with its seed).
        pruner: The Optuna pruner's config, or None.
        objective: ``((metric, direction), ...)`` optimised; empty when none was recorded.
        codec: How each parameter is stored (``DomainCodec.describe()``).
        context_params: The constant parameters of every round, as readable tokens.
        n_permutations: The number of finished rounds the experiment is asked for.
        test_mode: Whether the rounds ran on the manifest's test data.
        feedback: The feedback interval and the storable reducer configs.
    """

    sfd_module: str | None = None
    sfd_source_hash: str | None = None
    data_fingerprint: str | None = None
    limen_version: str | None = None
    space_hash: str | None = None
    strategy: Mapping[str, Any] | None = None
    pruner: Any = None
    objective: tuple[tuple[str, str], ...] = ()
    codec: Mapping[str, Any] | None = None
    context_params: Mapping[str, Any] | None = None
    n_permutations: int | None = None
    test_mode: bool = False
    feedback: Mapping[str, Any] | None = None

    @property
    def is_limen(self) -> bool:
        """Whether Limen created the study (it records the parameter space's hash)."""
        return self.space_hash is not None

    @property
    def strategy_name(self) -> str:
        """The strategy's registered name (``grid`` when none was recorded)."""
        return str((self.strategy or {}).get("name", "grid"))

    @property
    def contexts(self) -> dict[str, Any]:
        """``context_params`` as a dict (empty when none was recorded)."""
        return dict(self.context_params or {})

    def to_attrs(self) -> dict[str, Any]:
        """The study user attrs that hold this record (JSON-safe values)."""
        attrs = {key: getattr(self, name) for name, key in _KEYS.items()}
        attrs[keys.OBJECTIVE] = [list(pair) for pair in self.objective] or None
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> StudyRecord:
        """Read the record from a study's user attrs; keys that are absent read as None."""
        values = {name: attrs.get(key) for name, key in _KEYS.items()}
        objective = values["objective"] or ()
        values["objective"] = tuple(
            (str(pair[0]), str(pair[1]))
            for pair in objective
            if isinstance(pair, list | tuple) and len(pair) == 2
        )
        values["test_mode"] = bool(values["test_mode"])
        target = values["n_permutations"]
        if isinstance(target, bool) or not isinstance(target, int):
            values["n_permutations"] = None
        return cls(**values)
