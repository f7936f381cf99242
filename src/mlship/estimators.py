"""Building the estimator that the values name, limited to scikit-learn classifiers."""

from __future__ import annotations

import importlib
from typing import Any

from sklearn.base import ClassifierMixin

from mlship.errors import InvalidInputError


def build_estimator(path: str, params: dict[str, Any]) -> Any:
    """Import ``path`` (e.g. ``sklearn.ensemble.RandomForestClassifier``) and construct it.

    Only classes under ``sklearn.`` are accepted, so a values file cannot make the train
    step import arbitrary code.
    """
    module_name, _, class_name = path.rpartition(".")
    if not module_name.startswith("sklearn.") or not class_name:
        raise InvalidInputError(
            f"pipeline.train.estimator {path!r} must be a scikit-learn class path such as "
            "sklearn.ensemble.RandomForestClassifier"
        )
    try:
        estimator_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise InvalidInputError(f"pipeline.train.estimator {path!r} not found in scikit-learn") from None
    if not (isinstance(estimator_class, type) and issubclass(estimator_class, ClassifierMixin)):
        raise InvalidInputError(f"pipeline.train.estimator {path!r} is not a scikit-learn classifier")

    try:
        return estimator_class(**params)
    except TypeError as error:
        raise InvalidInputError(f"pipeline.train.params are invalid for {path}: {error}") from None
