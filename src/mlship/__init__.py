"""mlship: train, validate, register and serve a scikit-learn model."""

import os

__version__ = "0.1.0"

# MLflow 3 sends usage telemetry to a remote endpoint from every client and server
# process. Pods and CI here have no route to it, and each attempt waits for a timeout,
# so mlship turns it off before MLflow is imported unless the operator chose otherwise.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
