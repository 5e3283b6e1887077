"""Errors about the user's input: they name the file, the column and an example row."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class InputError(ValueError):
    """Bad input data; the message is meant to be shown to the user as is."""


def input_error(path: Path | str, problem: str, column: str | None = None, example: Any = None) -> InputError:
    """`file: column 'c': problem (example row: ...)` — the one shape of every input error."""
    msg = f"{path}"
    if column is not None:
        msg += f": column '{column}'"
    msg += f": {problem}"
    if example is not None:
        msg += f" (example row: {example})"
    return InputError(msg)
