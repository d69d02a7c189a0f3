"""The one error every process answers with `configuration: <VARIABLE>: <what is wrong>` and exit
code 7 (`runtime.process`). Here, at the bottom, so a library below the processes (the document
store, the key ring's users) raises it without importing the settings that load it.
"""

from __future__ import annotations


class ConfigurationError(ValueError):
    """The configuration cannot be used. The message is one line, `<VARIABLE>: <what is wrong>`:
    the variable an operator sets comes first."""
