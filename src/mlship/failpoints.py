"""Named fault-injection points, switched on by an environment variable in tests.

``failpoint("after-create-version")`` does nothing unless ``$MLSHIP_FAILPOINT`` names
that point. ``NAME:kill`` makes the process kill itself with SIGKILL there, the way a
node failure or an out-of-memory kill would. ``NAME:pause`` creates
``$MLSHIP_FAILPOINT_DIR/NAME.reached`` and waits until ``NAME.continue`` appears in the
same folder (or ``$MLSHIP_FAILPOINT_TIMEOUT`` seconds, 120 by default, pass), so a test
can stop the MLflow server while the step is between two calls.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger(__name__)

ENV_FAILPOINT = "MLSHIP_FAILPOINT"
ENV_FAILPOINT_DIR = "MLSHIP_FAILPOINT_DIR"
ENV_FAILPOINT_TIMEOUT = "MLSHIP_FAILPOINT_TIMEOUT"


def failpoint(name: str) -> None:
    """Kill or pause the process here when $MLSHIP_FAILPOINT selects ``name``."""
    setting = os.environ.get(ENV_FAILPOINT, "")
    if not setting:
        return
    point, _, action = setting.partition(":")
    if point != name:
        return

    if action == "kill":
        log.warning("failpoint %s: killing process %d with SIGKILL", name, os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "pause":
        folder = Path(os.environ.get(ENV_FAILPOINT_DIR, "."))
        (folder / f"{name}.reached").touch()
        deadline = time.monotonic() + float(os.environ.get(ENV_FAILPOINT_TIMEOUT, "120"))
        log.warning("failpoint %s: paused until %s exists", name, folder / f"{name}.continue")
        while not (folder / f"{name}.continue").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    else:
        raise ValueError(f"{ENV_FAILPOINT}={setting!r} has an unknown action; use NAME:kill or NAME:pause")
