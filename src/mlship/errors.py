"""Exceptions shared by the pipeline steps and the exit codes they map to.

The exit codes are part of the contract with the Argo WorkflowTemplate: its retry
strategies retry only ``EXIT_TEMPORARY`` (a registry that is down or timing out), never
a failed gate or bad input, which would fail again the same way.
"""

# Exit codes follow sysexits.h where one fits.
EXIT_OK = 0
EXIT_FAILED = 1  # a gate failed or the input is invalid; retrying does not help
EXIT_USAGE = 2  # argparse's own code for a bad command line
EXIT_TEMPORARY = 75  # EX_TEMPFAIL: the registry was unreachable; the step is safe to retry


class MlshipError(Exception):
    """An expected failure with a message that names the bad value and the fix."""

    exit_code = EXIT_FAILED


class InvalidInputError(MlshipError):
    """Input data, configuration or arguments are invalid."""


class GateFailedError(MlshipError):
    """A quality gate (data, model metrics, latency) rejected the candidate."""


class RegistryUnavailableError(MlshipError):
    """The MLflow tracking server could not be reached after bounded retries."""

    exit_code = EXIT_TEMPORARY


class NotFoundError(MlshipError):
    """A model, version, alias or run does not exist in the registry."""
