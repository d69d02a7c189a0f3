"""The one configuration error and the one exit-code table of every process.

Here, at the bottom, so a library below the processes (the document store, the key ring and its
command line) raises the error and exits with the table's codes without importing the settings
that load it. `runtime.process` re-exports the table under the same names; docs/configuration.md
documents it once ("Exit codes").
"""

from __future__ import annotations

# Every process's exit codes, one table. A process uses the rows that can happen to it.
EXIT_OK = 0
EXIT_UNEXPECTED = 1  # a defect: report it
EXIT_CHECK_FAILED = 1  # `webhook_receiver check` only: Iron's webhook is not as it must be (the line says how)
EXIT_BAD_INPUT = 2  # argparse's usage error, and input refused before anything started
EXIT_NOT_FOUND = 3  # no such onboarding, Iron customer, or key id
EXIT_REJECTED = 4  # rejected by the workflow or Iron
EXIT_UNREACHABLE = 5  # Temporal, Iron or the receiver unreachable
EXIT_START_DATA_DIFFERS = 6  # already running with other start data, nothing changed
EXIT_CONFIGURATION = 7  # a setting the process cannot use
EXIT_WAIT_TIMED_OUT = 8  # a wait timed out


class ConfigurationError(ValueError):
    """The configuration cannot be used. The message is one line, `<VARIABLE>: <what is wrong>`:
    the variable an operator sets comes first. Every process answers it with
    `configuration: <VARIABLE>: <what is wrong>` on stderr and `EXIT_CONFIGURATION`."""
