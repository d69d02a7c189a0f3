"""The one way to quote input (a field name or value from a file, a request body, a header, an id)
in an error line or a log line.

What came from outside may hold line breaks, terminal escapes or Unicode line separators: printed
raw, it splits one error into several lines, forges a log line, or recolours an operator's
terminal. `quoted` shows every such character escaped and bounds the length, so the result is
always one printable line. Secrets and personal values are not quoted at all: callers leave them out.

This module imports nothing from the project, so every package may use it.
"""

from __future__ import annotations

__all__ = ["quoted", "message_line"]


def quoted(value: object, *, limit: int = 80) -> str:
    """`value` as one printable line in double quotes: a backslash, a quote and every character
    that does not print (C0, C1, DEL, U+2028/U+2029, other separators) shown as an escape, the
    way Python writes them in a string literal, so an ANSI escape reads as the text `\\x1b[31m`.

    A value that is not text is quoted as its `str`. Cut to `limit` characters of the original
    before escaping (escaping can make a hostile input several times longer), with
    `... (N characters)` saying how long it was."""
    text = value if isinstance(value, str) else str(value)
    shown = _escaped(text[:limit])
    if len(text) > limit:
        shown += f"... ({len(text)} characters)"
    return f'"{shown}"'


# How much of a message that had to be escaped its one line shows.
MESSAGE_LIMIT = 500


def message_line(text: object) -> str:
    """A message (an exception's text, which may embed input) as one line. Line breaks and tabs
    that lay a message out fold to one space; a message holding any other character that does
    not print (a terminal escape, a C1 control, a Unicode line separator) is shown `quoted`,
    every such character escaped, nothing folded: it shows what was given."""
    text = str(text)
    if all(ch.isprintable() or ch in "\t\n\r" for ch in text):
        return " ".join(text.split())
    return quoted(text.strip(), limit=MESSAGE_LIMIT)


# The escapes a reader knows from Python's string literals; any other character that does not
# print is written by its code point.
_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(text: str) -> str:
    if text.isprintable() and "\\" not in text and '"' not in text:
        return text
    out: list[str] = []
    for ch in text:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "".join(out)
