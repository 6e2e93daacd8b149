"""The mutable search state <-> the study, and the checks a resume must pass.

Finished rounds need no checkpoint: each is committed to the study as it ends. What Optuna
does not hold is the *mutable search state*: the ParamDomain and its mutation history, the MSQ
queue, filters and trim budget, reducer and feedback state, strategy state. Components hand it
over as JSON-safe dicts (``get_state()``); ``CheckpointManager`` stores it as one study user
attr, every ``checkpoint_interval`` rounds and at once after a mutation or intervention. The
feedback controller's own state (trigger count, what its reducers applied) is a second attr,
saved after every trigger through the same manager.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from limen.experiment import study_keys as keys
from limen.experiment.errors import ResumeError
from limen.utils.validation import Interval, validate_params

__all__ = ["FEEDBACK_ATTR", "STATE_ATTR", "CheckpointManager", "StudyAttrs", "check_resume"]

STATE_ATTR = keys.SEARCH_STATE
FEEDBACK_ATTR = keys.FEEDBACK_STATE


class StudyAttrs(Protocol):
    """The two storage calls a checkpoint needs (an Optuna storage provides both)."""

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]: ...

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None: ...


class CheckpointManager:
    """Saves and restores the mutable search state of one study.

    Args:
        storage: where the study lives.
        study_id: the study.
        checkpoint_interval: save every this many finished rounds (>= 1).
    """

    def __init__(self, storage: StudyAttrs, study_id: int, *, checkpoint_interval: int = 100):
        validate_params(
            {"checkpoint_interval": [Interval(int, 1, None)]},
            {"checkpoint_interval": checkpoint_interval},
            "CheckpointManager",
        )
        self.storage = storage
        self.study_id = study_id
        self.checkpoint_interval = checkpoint_interval

    def should_checkpoint(self, finished_rounds: int) -> bool:
        """Whether a periodic save is due after ``finished_rounds`` rounds."""
        return finished_rounds > 0 and finished_rounds % self.checkpoint_interval == 0

    def save(self, state: Mapping[str, Any], *, finished_rounds: int) -> None:
        """Store ``state`` (JSON-safe) in the study, replacing the previous checkpoint."""
        document = {
            "state": dict(state),
            "finished_rounds": finished_rounds,
            "saved_at": datetime.now(UTC).isoformat(),
        }
        self.storage.set_study_user_attr(self.study_id, STATE_ATTR, document)

    def load(self) -> dict[str, Any] | None:
        """The last saved state, or None when the study has none."""
        document = self.storage.get_study_user_attrs(self.study_id).get(STATE_ATTR)
        if document is None:
            return None
        if not isinstance(document, Mapping) or not isinstance(document.get("state"), Mapping):
            raise ResumeError(
                f"The study's {STATE_ATTR!r} attribute is corrupt ({type(document).__name__}); "
                "resume with resume='force' to start the search state afresh."
            )
        return dict(document["state"])

    def save_feedback(self, state: Mapping[str, Any]) -> None:
        """Store the feedback controller's state (JSON-safe), replacing the previous one.

        It is saved after the search state of the same trigger: a crash in between replays the
        trigger's interventions, which are idempotent, instead of losing them.
        """
        self.storage.set_study_user_attr(self.study_id, FEEDBACK_ATTR, dict(state))

    def load_feedback(self) -> dict[str, Any] | None:
        """The feedback controller's last saved state, or None when the study has none."""
        state = self.storage.get_study_user_attrs(self.study_id).get(FEEDBACK_ATTR)
        if state is None:
            return None
        if not isinstance(state, Mapping):
            raise ResumeError(
                f"The study's {FEEDBACK_ATTR!r} attribute is corrupt ({type(state).__name__}); "
                "resume with resume='force' to start the feedback state afresh."
            )
        return dict(state)


def check_resume(
    stored: Mapping[str, Any], current: Mapping[str, Any], *, force: bool
) -> list[str]:
    """Compare what a study was created with against the current run.

    Args:
        stored: fact name -> value recorded in the study (e.g. ``parameter space`` -> hash).
        current: the same facts for this run.
        force: accept differences (they are returned so the caller can audit them).

    Returns:
        The names of the facts that differ (empty when none).

    Raises:
        ResumeError: something differs and ``force`` is False.
    """
    changed = [name for name in stored if stored[name] != current.get(name)]
    if changed and not force:
        details = "; ".join(
            f"{name}: stored {stored[name]!r}, now {current.get(name)!r}" for name in changed
        )
        raise ResumeError(
            f"Cannot resume: the {', '.join(changed)} changed since the study was created "
            f"({details}). Restore the original, pass resume='force' to continue anyway "
            "(recorded in audit.jsonl), or start a new experiment name."
        )
    return changed
