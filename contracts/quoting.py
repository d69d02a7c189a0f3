"""The one way to quote input (a field name or value from a file, a request body, a header, an id)
in an error line or a log line.

What came from outside may hold line breaks, terminal escapes or Unicode line separators: printed
raw, it splits one error into several lines, forges a log line, or recolours an operator's
terminal. `quoted` shows every such character escaped and bounds the length, so the result is
always one printable line. Secrets and personal values are not quoted at all: callers leave them out.
"""

from __future__ import annotations

DEFAULT_LIMIT = 80


def _escaped(text: str) -> str:
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch.isprintable():  # False for C0, C1, DEL, U+2028/U+2029 and other separators
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "".join(out)


def escaped(value: object, *, limit: int = DEFAULT_LIMIT) -> str:
    """`value` as text with every non-printable character escaped, cut to `limit` characters of
    the original (with a note of its full length), without quotes."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        return f"{_escaped(text[:limit])}... ({len(text)} characters)"
    return _escaped(text)


def quoted(value: object, *, limit: int = DEFAULT_LIMIT) -> str:
    """`value` in double quotes, escaped and bounded: one printable line whatever it holds."""
    return f'"{escaped(value, limit=limit)}"'


def one_line(text: object, *, limit: int = 500) -> str:
    """A message that may embed input (an exception's text), as one printable line: runs of
    white space, line breaks included, fold to one space; any other non-printable character
    (a terminal escape) is shown escaped."""
    folded = " ".join(str(text).split())
    if len(folded) > limit:
        folded = folded[:limit] + "..."
    return "".join(ch if ch.isprintable() else _escaped(ch) for ch in folded)


def printable(text: str, *, limit: int = 2000) -> str:
    """`text` with every non-printable character (line breaks included) shown escaped, nothing
    else changed: for a log value on a console, where a raw one would forge or split lines."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return text if text.isprintable() else "".join(ch if ch.isprintable() else _escaped(ch) for ch in text)
