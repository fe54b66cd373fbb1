"""The embedded R interpreter of R models (`pip install 'drum[r]'`: rpy2, with R from the system).

R is not thread-safe: one thread (`drum-r`) starts R and runs every R call, so the prediction executor's
threads, `drum score` and `drum fit` all reach R through `RSession.call`, one call at a time. drum's own R
code (`r_glue.R`) keeps the user's hooks and loaded model inside R; only payload bytes, labels and the
resulting data frames cross the bridge.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import shutil
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drum.errors import DrumCommonException

logger = logging.getLogger("drum.model.r_bridge")

GLUE = Path(__file__).with_name("r_glue.R")
R_MISSING = (
    "R models need R, which was not found (no `R` on PATH and no R_HOME). Install it, e.g. "
    "`apt-get install r-base-core` on Debian/Ubuntu, then run drum again."
)
RPY2_MISSING = (
    "R models need the rpy2 package, which is not installed. Install drum with R support: pip install 'drum[r]'"
)


class RError(Exception):
    """An error raised by R code (a hook or drum's glue); its text is R's message."""


class RSession:
    """The one R interpreter of this process, run by one thread (see the module docstring)."""

    _instance: RSession | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="drum-r")
        self._executor.submit(self._start).result()

    @classmethod
    def get(cls) -> RSession:
        """Start R (once per process) and return the session."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = RSession()
            return cls._instance

    def _start(self) -> None:
        if not os.environ.get("R_HOME") and shutil.which("R") is None:
            raise DrumCommonException(R_MISSING)
        library_path = os.environ.get("LD_LIBRARY_PATH")
        try:
            with warnings.catch_warnings():
                # R runs in this thread with R_SignalHandlers = 0 (rpy2's setting): it takes no signals,
                # so SIGINT and SIGTERM stay with Python's handlers (the server's graceful shutdown).
                warnings.filterwarnings("ignore", message="R is not initialized by the main thread")
                import rpy2.rinterface as ri
                import rpy2.robjects as ro
                from rpy2.rinterface_lib import embedded
                from rpy2.robjects import numpy2ri, pandas2ri
        except ImportError as exc:
            raise DrumCommonException(f"{RPY2_MISSING} ({exc})") from exc
        finally:
            # rpy2 prepends R's library dirs to LD_LIBRARY_PATH (useless once R is loaded); child processes
            # (the `drum fit` check server, say) must not inherit it: another libpython may live there.
            if library_path is None:
                os.environ.pop("LD_LIBRARY_PATH", None)
            else:
                os.environ["LD_LIBRARY_PATH"] = library_path
        self.ri, self.ro = ri, ro
        self.RRuntimeError = embedded.RRuntimeError
        #: pandas <-> data.frame rules, used explicitly where frames cross (`to_r`, `to_pandas`).
        self.converter = ro.default_converter + numpy2ri.converter + pandas2ri.converter
        with ro.default_converter.context():
            ro.r["source"](str(GLUE))
        self.glue = ri.globalenv.find(".drum")
        self._functions: dict[str, Any] = {}

    def call(self, function: str, *args: Any, then: Callable[[Any], Any] | None = None) -> Any:
        """Call `.drum$<function>` of the glue in R's thread with plain Python arguments (made R values there,
        see `to_r`); R's errors become `RError` (with R's traceback logged). The result is an rpy2
        low-level value; `then` turns it into Python values, in R's thread (rpy2's values need R there).
        Calls go straight to R's closures: rpy2's high-level layer costs ~1 ms a call."""

        def job() -> Any:
            fn = self._functions.get(function)
            if fn is None:
                fn = self._functions[function] = self.glue.find(function)
            result = fn(*(self.to_r(a) for a in args))
            return result if then is None else then(result)

        return self.run(job)

    def run(self, job: Callable[[], Any]) -> Any:
        """Run `job` in R's thread; R's errors become `RError`."""

        def task() -> Any:
            try:
                return job()
            except self.RRuntimeError as exc:
                try:
                    trace = str(self.glue.find("traceback")()[0])
                except Exception:  # noqa: BLE001 - the traceback is only a courtesy
                    trace = "(an error occurred while getting traceback from R)"
                logger.error("R Traceback:\n%s", trace)
                raise RError(str(exc).strip()) from None

        return self._executor.submit(task).result()

    def to_r(self, value: Any) -> Any:
        """A plain Python value as an R value (in R's thread only): None → NULL, bytes → raw, str →
        character(1), a list → character vector, a dict → named list, a pandas frame or series → a
        data.frame or vector (pandas' rules), a number → a length-1 vector."""
        ri = self.ri
        if value is None:
            return ri.NULL
        if isinstance(value, bytes):
            return ri.ByteSexpVector(value)
        if isinstance(value, str):
            return ri.StrSexpVector([value])
        if isinstance(value, (list, tuple)):
            return ri.StrSexpVector([str(v) for v in value])
        if isinstance(value, dict):
            return self.ro.vectors.ListVector({str(k): self.to_r(v) for k, v in value.items()})
        if isinstance(value, bool):
            return ri.BoolSexpVector([value])
        if isinstance(value, int):
            return ri.IntSexpVector([value])
        if isinstance(value, float):
            return ri.FloatSexpVector([value])
        with self.converter.context():
            return self.ro.conversion.get_conversion().py2rpy(value)

    def to_pandas(self, value: Any) -> Any:
        """An R value (a data.frame) as pandas, in R's thread."""
        with self.converter.context():
            return self.ro.conversion.get_conversion().rpy2py(value)

    def make_names(self, labels: list[str]) -> list[str]:
        """R's `make.names` (what `data.frame()` does to column names)."""
        return self.run(lambda: [str(v) for v in self.ri.baseenv.find("make.names")(self.to_r(list(labels)))])
