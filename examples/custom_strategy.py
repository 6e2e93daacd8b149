"""A search strategy in plain Python: no Optuna, no study, no trials.

Run it with `python examples/custom_strategy.py [EXPERIMENT_DIR]`. The strategy only proposes
combinations and hears how they ended; Limen checks each proposal against the domain, the MSQ
filters and the rounds already run, and keeps every round in the study.
"""

import random
import sys

from limen import UniversalExperimentLoop
from limen.experiment import SearchStrategy
from limen.sfd.foundational_sfd import logreg_binary


class CoordinateWalk(SearchStrategy):
    """Moves one parameter of the best round so far to a random value of the domain."""

    def __init__(self, domain, *, seed=None):
        super().__init__(domain, seed=seed)
        self.rng, self.best = random.Random(seed), None

    def __next__(self):
        space = self.domain.params
        combo = {k: self.rng.choice(v) for k, v in space.items()}
        if self.best is not None:
            key = self.rng.choice(list(space))
            combo = {**self.best[1], key: combo[key]}
        return combo

    def tell(self, combo, state, values):
        if state == "COMPLETE" and (self.best is None or values[0] > self.best[0]):
            self.best = (values[0], dict(combo))


if __name__ == "__main__":
    uel = UniversalExperimentLoop(
        sfd=logreg_binary,
        test_mode=True,
        search_strategy=CoordinateWalk,  # a class: built on the SFD's domain with the run's seed
        experiment_dir=sys.argv[1] if len(sys.argv) > 1 else "limen-runs/walk",
    )
    log = uel.run("walk", n_permutations=20, seed=0, progress_bar=False)
    print(log.sort_values("auc", ascending=False).head(3)[["auc", "C", "shift"]])
