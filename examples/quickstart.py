"""Quick start: a 20-round sweep of a foundational SFD on embedded synthetic klines."""

import sys

import limen
from limen.sfd.foundational_sfd import logreg_binary

experiment_dir = sys.argv[1] if len(sys.argv) > 1 else "limen-runs/quickstart"

uel = limen.UniversalExperimentLoop(
    sfd=logreg_binary,  # params() + manifest(): data, features, target, model, objective
    test_mode=True,  # use the manifest's small test data source
    experiment_dir=experiment_dir,  # study.db, results.csv, round_data.jsonl, metadata.json
)
log = uel.run("quickstart", n_permutations=20, progress_bar=False)

print(log.sort_values("auc", ascending=False).head(3)[["_round_index", "auc", "C", "scaler"]])
print("best round:", uel.best_round["id"], uel.best_round["values"])
print("the study:", uel.study.study_name, len(uel.study.trials), "trials")
