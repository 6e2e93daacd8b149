"""Load a Sensor someone else made: check what it needs, trust only that, then predict.

A colleague runs an experiment and sends you a Sensor file. Loading it runs none of its code:
Limen builds only trusted types (scikit-learn, NumPy, Limen's own features and the
foundational SFDs). A file made from your colleague's own SFD names its types; you list them,
decide, and pass them as ``trusted=``. Run: ``python examples/load_shared_sensor.py [DIR]``.
"""

import sys
from pathlib import Path

import limen
from limen.data import synthetic_klines
from limen.experiment.trainer import SensorTrustError
from limen.sfd.foundational_sfd import logreg_binary

experiment_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "limen-runs/shared-sensor")

# --- Your colleague: a short sweep, the best round rebuilt and saved as one file.
uel = limen.UniversalExperimentLoop(
    sfd=logreg_binary, test_mode=True, experiment_dir=experiment_dir
)
uel.run("shared", n_permutations=4, seed=3, progress_bar=False)
trainer = limen.Trainer(experiment_dir)
[sensor] = trainer.train(trainer.best(1))
shared = sensor.save(experiment_dir / "best.sensor")  # skops: loading it runs no code

# --- You: first see which types the file needs beyond the trusted ones (nothing is loaded).
needed = limen.Sensor.untrusted_types(shared)
print("types to review:", needed or "none (a foundational SFD)")
try:
    received = limen.Sensor.load(shared, trusted=needed)  # pass only types you have reviewed
except SensorTrustError as refused:
    sys.exit(f"not loaded: {refused}")
print("round", received.round_id[:12], "from", received.provenance["sfd_module"])
print("trained on", received.provenance["trained_on"], "with", received.provenance["versions"])

predictions = received.predict(synthetic_klines(n_rows=300, seed=7))
print(predictions.dropna(subset=["prediction"]).tail(3))

# A signed file proves who made it: only holders of the shared secret can write it.
signed = sensor.save(experiment_dir / "best-signed.sensor", key="team secret")
print("signed file loads with the key:", limen.Sensor.load(signed, key="team secret").round_id[:12])
