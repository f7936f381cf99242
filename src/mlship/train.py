"""Train the estimator named in the values and log it to MLflow.

The run records the parameters, training metrics, the model with its signature and an
input example, and the data profile from validate-data. Its tags tie it to its inputs:
the git commit, the SHA-256 of the data and the Argo workflow name.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import infer_signature
from sklearn.metrics import accuracy_score

from mlship.config import load_config
from mlship.data import features_and_target, hash_file, read_table, split
from mlship.errors import InvalidInputError
from mlship.estimators import build_estimator
from mlship.outputs import write_value
from mlship.tracking import check_server

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
TAG_GIT_COMMIT = "mlship.git_commit"
TAG_DATA_HASH = "mlship.data_hash"
TAG_DATA_SOURCE = "mlship.data_source"
TAG_WORKFLOW = "mlship.workflow_name"
TAG_ENVIRONMENT = "mlship.environment"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="pipeline config file (default: $MLSHIP_CONFIG or /etc/mlship/pipeline.yaml)")
    parser.add_argument("--data", required=True, help="CSV or Parquet training data")
    parser.add_argument("--data-hash", help="SHA-256 of the data from validate-data (computed when omitted)")
    parser.add_argument("--profile", help="data profile JSON from validate-data, logged with the run")
    parser.add_argument("--git-commit", default="unknown", help="commit of the code and values that ran")
    parser.add_argument("--workflow-name", default="local", help="Argo workflow name, for traceability")
    parser.add_argument("--experiment", help="MLflow experiment (default: the model name)")
    parser.add_argument("--run-id-out", help="write the MLflow run id here")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    frame = read_table(args.data)
    data_hash = args.data_hash or hash_file(args.data)
    features, target = features_and_target(frame, config.data)
    x_train, _, y_train, _ = split(features, target, config.split)

    estimator = build_estimator(config.train.estimator, config.train.params)
    check_server()
    mlflow.set_experiment(args.experiment or config.model_name)

    tags = {
        TAG_GIT_COMMIT: args.git_commit,
        TAG_DATA_HASH: data_hash,
        TAG_DATA_SOURCE: str(args.data),
        TAG_WORKFLOW: args.workflow_name,
        TAG_ENVIRONMENT: config.environment,
    }
    with mlflow.start_run(tags=tags) as active_run:
        run_id = active_run.info.run_id
        log.info("training %s on %d rows (run %s)", config.train.estimator, len(x_train), run_id)

        mlflow.log_params({"estimator": config.train.estimator, **config.train.params})
        mlflow.log_params(
            {
                "test_size": config.split.test_size,
                "random_seed": config.split.random_seed,
                "features": ",".join(config.data.feature_names),
            }
        )

        # Fit on a plain array so the served model does not check pandas column names on
        # every request. The signature below records the names and their order.
        try:
            estimator.fit(x_train.to_numpy(), y_train.to_numpy())
        except ValueError as error:
            raise InvalidInputError(f"training {config.train.estimator} failed: {error}") from None
        train_accuracy = float(accuracy_score(y_train, estimator.predict(x_train.to_numpy())))
        mlflow.log_metric("train_accuracy", train_accuracy)

        if args.profile:
            mlflow.log_dict(json.loads(Path(args.profile).read_text(encoding="utf-8")), "data/profile.json")

        example = x_train.head(5)
        signature = infer_signature(example, estimator.predict(example.to_numpy()))
        mlflow.sklearn.log_model(
            estimator,
            name=MODEL_ARTIFACT,
            signature=signature,
            input_example=example,
            pip_requirements=_pip_requirements(),
            serialization_format="skops",
            skops_trusted_types=trusted_types(estimator),
        )
        log.info("logged model for run %s: train_accuracy=%.4f", run_id, train_accuracy)

    write_value(args.run_id_out, run_id)
    return 0


def trusted_types(estimator: object) -> list[str]:
    """Return the types skops must trust to load ``estimator``, all from scikit-learn.

    skops refuses to load types outside its default allow-list, such as the tree storage
    of random forests. This step built the estimator from a scikit-learn class, so its
    scikit-learn types are trusted; anything else is an error rather than a silent trust.
    """
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(estimator))
    foreign = [name for name in untrusted if not name.startswith("sklearn.")]
    if foreign:
        raise InvalidInputError(f"the trained model contains types outside scikit-learn: {', '.join(foreign)}")
    return list(untrusted)


def _pip_requirements() -> list[str]:
    """Pin what the serve image needs, instead of MLflow's slow import-capture inference."""
    import sklearn
    import skops

    return [
        f"scikit-learn=={sklearn.__version__}",
        f"numpy=={np.__version__}",
        f"skops=={skops.__version__}",
        f"mlflow-skinny=={mlflow.__version__}",
    ]
