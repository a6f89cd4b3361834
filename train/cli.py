"""What the command lines of ``train`` and ``convert`` share: a quiet TensorFlow, and bad input
answered with one line on stderr and a non-zero exit, never a traceback."""

import argparse
import os
import sys

from .data import data_dir, require_records
from .tracking import mask_url


class UsageError(Exception):
    """Bad input to a command: its message is the one line the user sees."""


def quiet_tensorflow():
    """Import TensorFlow without its start-up banner.

    ``TF_CPP_MIN_LOG_LEVEL`` must be set before the import, and 3: the spurious
    ``E0000 ... use_unbounded_threadpool`` line of every ``fit`` is an ERROR. The oneDNN and
    CPU-feature lines are written before TensorFlow reads that variable (absl logs to stderr
    until it is initialised), so stderr is pointed at /dev/null for the import itself. A
    Python without TensorFlow (the service's venv, a system Python) is a ``UsageError`` that
    names the venv to use; any other failed import keeps its exception. A user's own
    TF_CPP_MIN_LOG_LEVEL wins.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "tensorflow":
            raise
        raise UsageError(
            f"TensorFlow is not installed in {sys.executable}: training and promotion run in "
            "the project venv, .venv/bin/python (make test or make train builds it)"
        ) from None
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def at_least(kind, low):
    """An argparse type: a number of ``kind`` (int or float) no smaller than ``low``, so that a
    count of 0 epochs or a negative strip length is refused before any run is created."""
    def parse(text):
        value = kind(text)  # not a number: argparse's own "invalid int value" message
        if not value >= low:
            raise argparse.ArgumentTypeError(f"{text} is under {low}")
        return value
    parse.__name__ = kind.__name__  # what argparse names the type after in its messages
    return parse


def one_line(exc):
    """The first line of an exception's message, passwords of URLs masked."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return mask_url(text)[:400]


def check_data_option(argv):
    """Raise ``FileNotFoundError`` for a wrong ``--data`` in ``argv``, for a record named in
    ``--train-records``, ``--val-records`` or ``--test-records`` that is not in it, or when no
    MIT-BIH copy is found at all: told in a second, before TensorFlow's import and before
    anything is written to the MLflow store."""
    if "-h" in argv or "--help" in argv:
        return
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--data")
    for option in RECORD_OPTIONS:
        pre.add_argument(option, nargs="+", default=[])
    given = pre.parse_known_args(argv)[0]
    directory = data_dir(given.data)
    for option in RECORD_OPTIONS:
        try:
            require_records(directory, getattr(given, option[2:].replace("-", "_")))
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{option}: {exc}") from None


RECORD_OPTIONS = ("--train-records", "--val-records", "--test-records")


def _user_errors():
    errors = [UsageError, FileNotFoundError, NotADirectoryError]
    if "mlflow.exceptions" in sys.modules:  # an MLflow error needs MLflow imported
        errors.append(sys.modules["mlflow.exceptions"].MlflowException)
    return tuple(errors)


def run_cli(prog, main, argv=None):
    """``main(argv)``, with the errors bad input causes turned into one line on stderr, exit 2.

    Those are: ``UsageError``, a missing file or directory (a wrong ``--data``, a record not
    in it) and MLflow's refusals (an unknown run or experiment, an unreachable server).
    Anything else is a bug and keeps its traceback.
    """
    # MLflow draws artifact download bars on stderr: a refusal must be the only line there,
    # and a run resumed from its checkpoints would fill its log with them
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        return main(sys.argv[1:] if argv is None else argv) or 0
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
