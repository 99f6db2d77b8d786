"""User-facing errors: one line, no traceback, non-zero exit."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

EXIT_USER_ERROR = 2


class FragileError(Exception):
    """A problem with the user's input (params, files, data) that names its fix."""


def reports_errors(func: F) -> F:
    """Turn a FragileError into `error: ...` on stderr and exit code 2.

    Everything else is a bug in fragile and keeps its traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FragileError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
