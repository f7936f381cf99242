"""The seldon-core model server: ``seldon-core-microservice mlship.serving.MlshipModel``."""

from mlship.serving.model import MlshipModel

__all__ = ["MlshipModel"]
