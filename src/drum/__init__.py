"""drum: a FastAPI-first, drop-in compatible runner for DRUM custom model directories.

The public surface mirrors ``datarobot_drum``: ``RuntimeParameters`` and ``CustomHTTPError``.
"""

__version__ = "0.1.0"
#: The DRUM release whose HTTP API and behaviour this package reproduces.
DRUM_COMPAT_VERSION = "1.18.1"

from drum.config.runtime_params import RuntimeParameters  # noqa: E402
from drum.errors import CustomHTTPError  # noqa: E402

__all__ = ["RuntimeParameters", "CustomHTTPError", "__version__", "DRUM_COMPAT_VERSION"]
