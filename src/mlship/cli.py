"""Command-line entry point: ``mlship <command> [options]``.

Each command lives in its own module, which is imported only when that command runs,
so the serve image can run ``mlship`` without the training dependencies and
``mlship --help`` starts fast.
"""

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Protocol

from mlship import __version__
from mlship.errors import EXIT_FAILED, EXIT_USAGE, MlshipError
from mlship.logs import configure_logging

log = logging.getLogger("mlship")

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "example-data": ("mlship.example_data", "write a data set that scikit-learn ships to CSV or Parquet"),
    "validate-data": ("mlship.validate_data", "check the training data against the declared schema"),
    "train": ("mlship.train", "train the configured estimator and log it to MLflow"),
    "validate-model": ("mlship.validate_model", "check the candidate's metrics and compare it with the champion"),
    "benchmark": ("mlship.benchmark", "measure the candidate's prediction latency"),
    "register": ("mlship.register", "register the candidate and point the environment's alias at it"),
    "promote": ("mlship.promote", "move a model version from one environment's alias to the next"),
    "rollback": ("mlship.rollback", "move an environment's alias back to the version that held it before"),
    "audit": ("mlship.audit", "print the registration, promotion and rollback history of a model"),
    "run-local": ("mlship.local_runner", "run the chart's WorkflowTemplate DAG on this machine"),
    "demo": ("mlship.demo", "run the whole pipeline locally, then serve and query the model"),
}


class CommandModule(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _top_level_help() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: mlship [--version] <command> [options]",
        "",
        "commands:",
        *(f"  {name:<{width}}  {help_text}" for name, (_, help_text) in COMMANDS.items()),
        "",
        "Run `mlship <command> --help` for the options of one command.",
    ]
    return "\n".join(lines)


def build_parser(command: str) -> tuple[argparse.ArgumentParser, CommandModule]:
    """Import the module of ``command`` and build its argument parser."""
    module_name, help_text = COMMANDS[command]
    module: CommandModule = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"mlship {command}", description=help_text)
    parser.add_argument(
        "--log-level",
        default=None,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default: $MLSHIP_LOG_LEVEL or INFO)",
    )
    module.add_arguments(parser)
    return parser, module


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)

    if not arguments or arguments[0] in ("-h", "--help"):
        print(_top_level_help())
        return 0 if arguments else EXIT_USAGE
    if arguments[0] == "--version":
        print(f"mlship {__version__}")
        return 0

    command = arguments[0]
    if command not in COMMANDS:
        print(
            f"mlship: error: unknown command {command!r}; choose one of: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return EXIT_USAGE

    parser, module = build_parser(command)
    args = parser.parse_args(arguments[1:])
    configure_logging(args.log_level)

    try:
        return module.run(args)
    except MlshipError as error:
        # One clear line for the operator; the step's own log lines came before it.
        log.error("%s failed: %s", command, error)
        print(f"mlship {command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        log.error("%s interrupted", command)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
