"""Share a study on PostgreSQL with a colleague: they read it with no code of yours, and run
more rounds of it with their own checkout of the SFD.

Run: ``python examples/shared_study.py POSTGRES_URL [DIR]``. Reading a study (``Log``,
``limen status``, ``limen export``, the dashboard) imports nothing: parameters are the tokens
the study stores. Running more rounds needs the SFD, which each person imports themselves; a
source that differs from the one the study recorded is refused unless forced.
"""

import sys
from pathlib import Path

import limen
from limen.cli import main as limen_cli
from limen.sfd.foundational_sfd import logreg_binary

url = sys.argv[1] if len(sys.argv) > 1 else "postgresql+psycopg://postgres@127.0.0.1:5432/test"
here = Path(sys.argv[2] if len(sys.argv) > 2 else "limen-runs/shared-study")

# --- You: a sweep whose study lives on the shared server.
mine = limen.UniversalExperimentLoop(
    sfd=logreg_binary, test_mode=True, storage=url, experiment_dir=here / "mine"
)
mine.run("shared-logreg", n_permutations=6, seed=1, progress_bar=False)

# --- Your colleague reads it: no SFD, no import of anything the database names.
log = limen.Log(url, study_name="shared-logreg")
print(log.best(3)[["_round_index", "auc", "scaler"]])
limen_cli(["status", url, "--study", "shared-logreg"])

# --- ... and adds rounds with their own copy of the SFD (checked against the recorded hash).
theirs = limen.UniversalExperimentLoop(
    sfd=logreg_binary, test_mode=True, storage=url, experiment_dir=here / "theirs"
)
theirs.run("shared-logreg", n_permutations=10, resume=True, progress_bar=False)
print("rounds in the shared study:", len(theirs.experiment_log))
