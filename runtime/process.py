"""How every process starts and stops.

    from runtime.process import exit_now, load_or_exit

    settings = load_or_exit(WorkerSettings.load)   # bad config: one line, EXIT_CONFIGURATION
    converter = load_or_exit(settings.data_converter)
    ...
    exit_now(main())

`exit_now(code, message=None)` leaves without interpreter finalization: the Temporal client's
native threads can abort a finalizing interpreter, which would turn a clean exit code into a
crash. `load_or_exit(build)` calls `build()` and, when it raises a configuration error, prints
`configuration: <VARIABLE>: <what is wrong>` as one line on stderr (no traceback) and exits with
`EXIT_CONFIGURATION`.

`EXIT_CONFIGURATION` (7) is every process's answer to a configuration it cannot use, the
starter's included. It is not 2: 2 is argparse's usage error in every process, and the starter's
answer to bad input on its command line, which a person fixes by retyping; configuration is
fixed where the process is deployed. The table itself is `contracts.configuration`'s, re-exported
here; docs/configuration.md ("Exit codes") documents it.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn, TypeVar

from contracts.configuration import (  # noqa: F401 - the one table, under the names every process imports
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_CONFIGURATION,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_START_DATA_DIFFERS,
    EXIT_UNEXPECTED,
    EXIT_UNREACHABLE,
    EXIT_WAIT_TIMED_OUT,
    ConfigurationError,
)
from contracts.quoting import message_line

T = TypeVar("T")


def exit_now(code: int, message: str | None = None) -> NoReturn:
    """Print `message` (if any) as one line on stderr, flush, and end the process with `code`."""
    if message:
        print(message_line(message), file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def configuration_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean 'the configuration is wrong', not 'the code is wrong'."""
    from data_protection.keys import DataProtectionError

    return (ConfigurationError, DataProtectionError)


def configuration_message(exc: BaseException) -> str:
    """The one line an operator reads, `configuration: <VARIABLE>: <what is wrong>` (the
    error's message names the variable first), never a traceback."""
    return f"configuration: {message_line(exc)}"


def exit_on_configuration_error(exc: BaseException) -> NoReturn:
    """Exit with `EXIT_CONFIGURATION` and one line naming the variable."""
    exit_now(EXIT_CONFIGURATION, configuration_message(exc))


def exit_on_configuration(variable: str, problem: str) -> NoReturn:
    """Exit with `EXIT_CONFIGURATION` and the line for a problem found outside a settings model."""
    exit_on_configuration_error(ConfigurationError(f"{variable}: {problem}"))


def load_or_exit(build: Callable[[], T]) -> T:
    """`build()`, or one line on stderr and `EXIT_CONFIGURATION` if it raises a configuration
    error. Any other exception propagates (a bug should keep its traceback)."""
    try:
        return build()
    except configuration_errors() as exc:
        exit_on_configuration_error(exc)
