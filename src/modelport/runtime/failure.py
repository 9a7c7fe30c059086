"""What a failed process's output says went wrong, in one line (pure).

A replica or a converter that dies prints a log, often ending in a Python traceback. A status
message or a CLI refusal wants the reason only: the exception's `Type: message` line (the last
one: a chained traceback ends with the exception that was raised last), else a logged ERROR
line, else the last line that is not part of a traceback. Never the frames. Typer's rich
tracebacks (`modelport serve` prints one) draw the frames in a box and wrap the exception's line
at the console's width: the lines after the box are joined back into one.
"""

from __future__ import annotations

import re

MAX_REASON_CHARS = 300

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# torch.distributed's per-rank prefix ("[rank0]: ValueError: ...")
_RANK = re.compile(r"^\[rank\d+\]:\s*")
# `pkg.mod.SomeError: message`, `KeyboardInterrupt`, `SystemExit: 2`; not "Error while …"
_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*\w*(?:Error|Exception|Exit|Interrupt|Fault|Failure)(?::\s.*)?$")
# a logging line at ERROR or CRITICAL: "ERROR:hf-to-gguf:Model X is not supported"
_LOGGED = re.compile(r"^(?:ERROR|CRITICAL)(?::[\w.-]+)?:\s*(?P<message>\S.*)$")
_RICH_BOX = ("╭", "│", "╰")
_RICH_BOX_END = "╰"
_TRACEBACK_NOISE = (
    "Traceback (most recent call last):",
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)


def failure_line(text: str | None, limit: int = MAX_REASON_CHARS) -> str:
    """The one line of `text` that says why a process failed, cut to `limit` characters ("" for
    no text)."""
    lines = [_clean(line) for line in re.split(r"[\r\n]+", text or "")]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    reason = (
        _exception(lines)
        or next((m["message"] for line in reversed(lines) if (m := _LOGGED.match(line))), None)
        or next((line for line in reversed(lines) if not _is_frame(line)), lines[-1])
    )
    return reason if len(reason) <= limit else reason[: max(limit - 1, 0)] + "…"


def _exception(lines: list[str]) -> str | None:
    at = next((i for i in range(len(lines) - 1, -1, -1) if _EXCEPTION.match(lines[i])), None)
    if at is None:
        return None
    if at > 0 and lines[at - 1].startswith(_RICH_BOX_END):  # a rich traceback: the line wraps
        return " ".join(lines[at:])
    return lines[at]


def _clean(line: str) -> str:
    return _RANK.sub("", _ANSI.sub("", line).strip())


def _is_frame(line: str) -> bool:
    """A traceback's own lines: its header, `File "…", line N`, the caret markers, the links
    between chained exceptions, a rich traceback's box."""
    return line in _TRACEBACK_NOISE or line.startswith(('File "', *_RICH_BOX)) or not line.strip("^~ ")
