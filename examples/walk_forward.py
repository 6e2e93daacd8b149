"""Walk-forward: evaluate each round on four test windows, then ask whether the winner is luck."""

import sys

import pandas as pd

import limen
from limen.experiment import acceptance_report
from limen.sfd.foundational_sfd import logreg_walk_forward

experiment_dir = sys.argv[1] if len(sys.argv) > 1 else "limen-runs/walk-forward"

uel = limen.UniversalExperimentLoop(
    sfd=logreg_walk_forward,  # Manifest.set_split_walk_forward(4, 300, purge_bars=12, ...)
    test_mode=True,
    experiment_dir=experiment_dir,
    pruner={"name": "threshold", "lower": 0.45},  # stop a round whose first fold's AUC < 0.45
)
log = uel.run("walk-forward", n_permutations=8, seed=7, progress_bar=False)
print(log[["_round_index", "state", "auc", "C", "shift"]])

folds = pd.read_csv(f"{experiment_dir}/fold_results.csv")  # one row per round and fold
print(folds[["_round_index", "fold", "auc"]].head(8))

report = acceptance_report(experiment_dir)  # also writes acceptance_report.json / .md
print("winner:", report["winner_trial"][:12], "Sharpe per bar:", report["winner_sharpe"])
print("Deflated Sharpe:", report["deflated_sharpe_probability"], "PBO:", report["pbo"])
print("verdicts:", report["verdicts"], "errors:", report["errors"])
