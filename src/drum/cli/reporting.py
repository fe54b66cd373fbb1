"""How `drum` reports an error that ends a command (also a server whose model failed to load)."""

from __future__ import annotations

import sys
import traceback

from drum.errors import DrumCommonException, DrumSchemaValidationException

SCHEMA_VALIDATION_EXIT_CODE = 3


def report_error(exc: BaseException, show_stacktrace: bool) -> int:
    """Print `exc` as drum reports errors (`ERROR: ...`, with the traceback when asked for or when it is
    not one of drum's own errors); returns the exit code: 3 for a schema validation error, 130 for an
    interrupt, else 1."""
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if show_stacktrace or not isinstance(exc, (DrumCommonException, DrumSchemaValidationException)):
        traceback.print_exception(exc)
    print(f"ERROR: {exc}", file=sys.stderr)
    return SCHEMA_VALIDATION_EXIT_CODE if isinstance(exc, DrumSchemaValidationException) else 1
