"""Logging set-up: one line per event, to standard error."""

import logging
import os

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: str | None = None) -> None:
    """Configure the root logger once; the level defaults to $MLSHIP_LOG_LEVEL or INFO."""
    chosen = (level or os.environ.get("MLSHIP_LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(level=chosen, format=LOG_FORMAT, force=True)

    # MLflow and urllib3 log every retry and artifact upload at INFO, which drowns the
    # step's own events.
    for noisy in ("urllib3", "mlflow", "alembic", "git"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
