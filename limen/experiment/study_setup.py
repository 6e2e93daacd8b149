"""Opening a run's study: the fresh-run guard, resume checks, and what a new study records.

A fresh run refuses a directory or study that already holds rounds (``FileExistsError`` naming
the two ways out); a resume refuses a study that is missing, not Limen's, or run with another
parameter space, SFD or strategy kind (``ResumeError``, unless forced). A new study records what
resume needs to rebuild the run (``study_attrs``) and ``metadata.json`` for people.

A start-up stopped at any instant (Ctrl-C, SIGKILL, a lost machine) leaves something the same
command can continue: no study (created again), a study without its attributes and trials (an
unfinished creation, dropped and created again; the attributes are written in one transaction),
or a set-up study holding no trial (taken over by a fresh run of the same experiment, which
writes the missing ``metadata.json``; a resume writes it too).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna

from limen import __version__
from limen.adapters.artifacts import save_study_note
from limen.adapters.distributions import DomainCodec
from limen.adapters.pruners import pruner_config
from limen.adapters.storage import LimenStorage, StudyProbe, probe_study, redact_url
from limen.experiment import study_keys as keys
from limen.experiment.checkpoint_manager import check_resume
from limen.experiment.errors import ExperimentExistsError, NothingToResumeError, ResumeError
from limen.experiment.experiment_source import recorded_storage
from limen.experiment.identity import data_fingerprint, source_hash, space_hash, value_token
from limen.experiment.records import (
    METADATA_JSON,
    RESULTS_CSV,
    ROUND_DATA_JSONL,
    write_json_atomic,
)
from limen.experiment.reducer import make_reducers
from limen.experiment.reducer.registry import reducer_config
from limen.experiment.run_plan import RunPlan, make_run_strategy
from limen.experiment.study_record import StudyRecord
from limen.sfd.loader import check_source

__all__ = [
    "DEFAULT_FEEDBACK_INTERVAL",
    "ROUND_FILES",
    "check_resumable",
    "create_study",
    "existing_study",
    "feedback_record",
    "guard_fresh",
    "metadata",
    "restore_feedback_config",
    "set_metric_names",
    "strategy_record",
    "study_attrs",
    "validate_resume",
    "worker_seed",
    "write_metadata",
]

DEFAULT_FEEDBACK_INTERVAL = 100
ROUND_FILES = (RESULTS_CSV, ROUND_DATA_JSONL)
# How a fresh run starts: a new study, one replacing an unfinished creation, or taking over a
# set-up study of the same experiment that holds no trial (a start-up that was interrupted).
NEW, RECREATE, TAKE_OVER = "new", "recreate", "take over"
logger = logging.getLogger(__name__)


def existing_study(plan: RunPlan, storage: LimenStorage | None = None) -> str:
    """``absent``, ``present``, or ``unfinished``: a creation that crashed before Limen wrote
    its attributes, holding no trial (safe to create again). Reads only, through ``storage``
    when given (see ``probe_study``)."""
    return _study_state(probe_study(plan.storage_url, plan.experiment_name, storage))


def _study_state(probe: StudyProbe) -> str:
    if not probe.exists:
        return "absent"
    if probe.n_trials == 0 and not StudyRecord.from_attrs(probe.user_attrs).is_limen:
        return "unfinished"
    return "present"


def guard_fresh(loop: Any, plan: RunPlan, storage: LimenStorage | None = None) -> str:
    """Refuse a fresh run where rounds exist; say how it starts (``NEW``, ``RECREATE``,
    ``TAKE_OVER``). Reads only, through ``storage`` when given (see ``probe_study``).

    Raises:
        ExperimentExistsError: the directory or the study already holds rounds, or the study
            holds none but was set up for another experiment (a ``FileExistsError``).
    """
    directory = plan.experiment_dir
    used = [name for name in ROUND_FILES if _holds_rows(directory / name)]
    probe = probe_study(plan.storage_url, plan.experiment_name, storage)
    state = _study_state(probe)
    where = f"study {plan.experiment_name!r} in {redact_url(plan.storage_url)}"
    if state == "present" and probe.n_trials:
        used.append(where)
    if used:
        raise ExperimentExistsError(
            f"Experiment {plan.experiment_name!r} already has rounds ({', '.join(used)} "
            f"in {directory}). Continue it with run(..., resume=True) (CLI: limen resume "
            f"{directory}), or start a new one under a new experiment name or directory."
        )
    if state == "absent":
        return NEW
    if state == "unfinished":
        return RECREATE
    changed = [
        name
        for name, (stored, now) in _identity(loop, plan, probe.user_attrs).items()
        if stored != now
    ]
    if changed:
        raise ExperimentExistsError(
            f"The {where} holds no rounds yet but was set up with another "
            f"{', '.join(changed)}. Take it over with run(..., resume='force'), or start this "
            "experiment under a new experiment name."
        )
    logger.warning(
        "The %s is set up but holds no rounds yet (an interrupted start-up?): continuing it.",
        where,
    )
    return TAKE_OVER


def _holds_rows(path: Path) -> bool:
    """Whether a round file holds a round: a line beyond a CSV header, or any JSONL line."""
    if not path.exists():
        return False
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return lines > (1 if path.suffix == ".csv" else 0)


def _identity(loop: Any, plan: RunPlan, attrs: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """What makes a study this experiment's, as ``{name: (stored, this run's)}``."""
    record = StudyRecord.from_attrs(attrs)
    return {
        "parameter space": (record.space_hash, space_hash(plan.params)),
        "SFD": (record.sfd_module, loop.sfd_name),
        "strategy": (record.strategy_name, strategy_record(plan)["name"]),
    }


def check_resumable(plan: RunPlan, storage: LimenStorage | None = None) -> None:
    """Refuse to resume a study that does not exist (read through ``storage`` when given)."""
    state = existing_study(plan, storage)
    if state == "unfinished":
        raise NothingToResumeError(
            f"Cannot resume experiment {plan.experiment_name!r}: its study in "
            f"{redact_url(plan.storage_url)} was never set up (its creation was interrupted) "
            "and holds no round. Start it fresh with resume=False: the same run replaces it."
        )
    if state == "absent":
        raise NothingToResumeError(
            f"Cannot resume experiment {plan.experiment_name!r}: no study of that name "
            f"in {redact_url(plan.storage_url)} (directory {plan.experiment_dir}). Check the "
            "name and experiment_dir, or start it fresh with resume=False."
        )


def validate_resume(loop: Any, plan: RunPlan, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Check the stored experiment against this run and rebuild the stored search.

    The strategy is rebuilt with the stored seed (from the stored config when this run names
    none), the pruner from its stored config when this run names none, and the objective is the
    stored one. Returns the audit details of the resume.

    Raises:
        ResumeError: the study is not Limen's, or differs and ``resume`` is not ``"force"``.
        SFDSourceMismatchError: the SFD's source file is not the one the study recorded.
    """
    stored_record = StudyRecord.from_attrs(attrs)
    if not stored_record.is_limen:
        raise ResumeError(
            f"Study {plan.experiment_name!r} was not created by Limen (it has no "
            f"{keys.SPACE_HASH} attribute), so it cannot be resumed. Start a new experiment."
        )
    check_source(loop.sfd, attrs, force=plan.resume == "force")
    record = dict(stored_record.strategy or {"name": "grid"})
    if stored_record.objective:
        plan.objective = list(stored_record.objective)
    config = loop._strategy_config
    if config is None:
        if record.get("name") in ("sampler", "custom"):
            raise ResumeError(
                f"The study was run with the strategy {record.get('class')}, which cannot be "
                "rebuilt from its record: pass the same search_strategy=... again."
            )
        config = dict(record)
    plan.seed = record.get("seed", plan.seed)
    plan.random_search = record.get("shuffle", plan.random_search)
    if plan.fleet and isinstance(config, dict) and config.get("name") != "grid":
        # Workers sharing a study would propose the same points from the same seed; the grid
        # keeps one order, so workers take its combinations one after another.
        config = {**config, "seed": worker_seed(config.get("seed", plan.seed))}
    plan.strategy = make_run_strategy(
        loop, config, plan.params, plan.objective, seed=plan.seed, shuffle=plan.random_search
    )
    if loop._pruner is None and stored_record.pruner is not None:
        loop._pruner = stored_record.pruner
    restore_feedback_config(loop, stored_record.feedback)
    identity = _identity(loop, plan, attrs)
    stored = {name: pair[0] for name, pair in identity.items()}
    current = {name: pair[1] for name, pair in identity.items()}
    changed = check_resume(stored, current, force=plan.resume == "force")
    return {
        "forced": bool(changed),
        "changed": {name: {"stored": stored[name], "now": current[name]} for name in changed},
    }


def worker_seed(seed: int | None) -> int:
    """A seed of this worker's own, derived from the study's seed, this host and this pid."""
    mixed = f"{seed}:{socket.gethostname()}:{os.getpid()}".encode()
    return int.from_bytes(hashlib.sha256(mixed).digest()[:4], "big") % 2**31


def restore_feedback_config(loop: Any, stored: Any) -> None:
    """Rebuild the stored reducers and feedback interval when this run names no reducers."""
    if not isinstance(stored, Mapping) or loop.pruning_strategies:
        return
    configs = [c for c in stored.get("reducers") or [] if isinstance(c, Mapping)]
    loop.pruning_strategies = make_reducers(configs)
    interval = stored.get("interval")
    if loop.feedback_interval == DEFAULT_FEEDBACK_INTERVAL and isinstance(interval, int):
        loop.feedback_interval = interval


def feedback_record(loop: Any) -> dict[str, Any]:
    """The feedback config kept in the study: the interval and each storable reducer."""
    configs = [reducer_config(r) for r in loop.pruning_strategies]
    return {"interval": loop.feedback_interval, "reducers": [c for c in configs if c]}


def strategy_record(plan: RunPlan) -> dict[str, Any]:
    """The strategy config kept in the study, enough to rebuild it on resume."""
    config = dict(plan.strategy.config)
    if config.get("seed") is None and "class" not in config:
        config["seed"] = plan.seed
    return config


def create_study(
    loop: Any, plan: RunPlan, storage: LimenStorage, *, discard_unfinished: bool
) -> int:
    """Create the study with its directions, metric names, attrs and note; its id."""
    if discard_unfinished:
        optuna.delete_study(study_name=plan.experiment_name, storage=storage)
    objective = plan.objective
    directions = [d for _, d in objective] if objective else ["maximize"]
    study = optuna.create_study(
        storage=storage, study_name=plan.experiment_name, directions=directions
    )
    logger.debug("Study %r created; recording its attributes.", plan.experiment_name)
    if objective:
        set_metric_names(study, [m for m, _ in objective])
    # One transaction: a study has all of its attributes or none (then it is recreated).
    storage.set_study_user_attrs(study._study_id, study_attrs(loop, plan))
    save_study_note(study)
    logger.debug("Study %r set up.", plan.experiment_name)
    return study._study_id


def write_metadata(loop: Any, plan: RunPlan) -> None:
    """Write the experiment directory's ``metadata.json`` (atomically)."""
    write_json_atomic(plan.experiment_dir / METADATA_JSON, metadata(loop, plan))
    logger.debug("Wrote %s for study %r.", METADATA_JSON, plan.experiment_name)


def study_attrs(loop: Any, plan: RunPlan) -> dict[str, Any]:
    """What the study records about its experiment (resume and the readers need it)."""
    return StudyRecord(
        sfd_module=loop.sfd_name,
        sfd_source_hash=source_hash(loop.sfd),
        data_fingerprint=data_fingerprint(loop.data),
        limen_version=__version__,
        space_hash=space_hash(plan.params),
        strategy=strategy_record(plan),
        pruner=pruner_config(loop._pruner),
        objective=tuple((str(m), str(d)) for m, d in plan.objective or ()),
        codec=DomainCodec(plan.params).describe(),
        context_params={k: value_token(v) for k, v in plan.context_params.items()},
        n_permutations=plan.n_permutations,
        test_mode=loop.test_mode,
        feedback=feedback_record(loop),
    ).to_attrs()


def metadata(loop: Any, plan: RunPlan) -> dict[str, Any]:
    """``metadata.json``: the experiment at a glance, without opening the study."""
    objective = plan.objective
    return {
        "experiment_name": plan.experiment_name,
        "study_name": plan.experiment_name,
        "sfd_module": loop.sfd_name,
        "storage": recorded_storage(plan.storage_url, plan.experiment_dir),
        "limen_version": __version__,
        "optuna_version": optuna.__version__,
        "created_at": datetime.now(UTC).isoformat(),
        "n_permutations": plan.n_permutations,
        "space_hash": space_hash(plan.params),
        "strategy": strategy_record(plan),
        "objective": [list(p) for p in objective] if objective else None,
        "test_mode": loop.test_mode,
    }


def set_metric_names(study: optuna.Study, names: list[str]) -> None:
    """Label the objective values so optuna-dashboard shows metric names, not ``values_0``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(names)
