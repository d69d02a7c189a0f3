"""How every process starts and stops.

    from runtime.process import exit_now, load_or_exit

    settings = load_or_exit(WorkerSettings.load, program="worker")   # bad config: one line, exit 2
    converter = load_or_exit(settings.data_converter, program="worker")
    ...
    exit_now(main())

`exit_now(code, message=None)` leaves without interpreter finalization: the Temporal client's
native threads can abort a finalizing interpreter, which would turn a clean exit code into a
crash. `load_or_exit(build, program=...)` calls `build()` and, when it raises a configuration
error, prints `program: <message>` as one line on stderr (no traceback) and exits with
`EXIT_CONFIGURATION` (2).
"""

from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn, TypeVar

from runtime.settings import ConfigurationError

EXIT_CONFIGURATION = 2

T = TypeVar("T")


def exit_now(code: int, message: str | None = None) -> NoReturn:
    """Print `message` (if any) as one line on stderr, flush, and end the process with `code`."""
    if message:
        print(" ".join(str(message).split()), file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def configuration_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean 'the configuration is wrong', not 'the code is wrong'."""
    from data_protection.keys import DataProtectionError

    return (ConfigurationError, DataProtectionError)


def configuration_message(exc: BaseException, program: str) -> str:
    """The one line an operator reads: `program: what is wrong` (never a traceback)."""
    return f"{program}: configuration error: {' '.join(str(exc).split())}"


def exit_on_configuration_error(exc: BaseException, program: str) -> NoReturn:
    """Exit with `EXIT_CONFIGURATION` and one line naming the problem."""
    exit_now(EXIT_CONFIGURATION, configuration_message(exc, program))


def load_or_exit(build: Callable[[], T], *, program: str) -> T:
    """`build()`, or one line on stderr and exit code 2 if it raises a configuration error.
    Any other exception propagates (a bug should keep its traceback)."""
    try:
        return build()
    except configuration_errors() as exc:
        exit_on_configuration_error(exc, program)
