"""ubp's own errors: the only exceptions the CLI shows as one line; anything else is a bug and keeps its traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class UbpError(Exception):
    """Base of every user-facing error; its message is shown to the user as is."""


class InputError(UbpError, ValueError):
    """Bad input data: the message names the file, the column and an example row."""


class UsageError(UbpError, ValueError):
    """A request that cannot be carried out as asked (an unknown device, a missing folder, a bad flag)."""


class NotFittedError(UbpError, RuntimeError):
    """An encoder or profile used before it was fitted or loaded."""


def input_error(path: Path | str, problem: str, column: str | None = None, example: Any = None) -> InputError:
    """`file: column 'c': problem (example row: ...)` — the one shape of every input error."""
    msg = f"{path}"
    if column is not None:
        msg += f": column '{column}'"
    msg += f": {problem}"
    if example is not None:
        msg += f" (example row: {example})"
    return InputError(msg)
