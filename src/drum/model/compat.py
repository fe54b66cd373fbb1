"""`import datarobot_drum` for user code when the real DRUM package is not installed.

User models written for DRUM do `from datarobot_drum import RuntimeParameters` (or import
`CustomHTTPError`, or the CustomTask interfaces of `datarobot_drum.custom_task_interfaces`); this installs
lightweight alias modules pointing at drum's own objects.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import drum
from drum import errors
from drum.config import runtime_params
from drum.model import custom_task, target, user_secrets


def _module(name: str, **attrs: object) -> types.ModuleType:
    module = types.ModuleType(name, f"drum compatibility alias for {name}")
    module.__dict__.update(attrs)
    module.__path__ = []  # a package, so submodule imports resolve through sys.modules
    return module


def _defined_in(module: types.ModuleType, kind: type) -> dict[str, object]:
    """The public classes and functions `module` itself defines."""
    return {
        k: v for k, v in vars(module).items()
        if not k.startswith("_") and isinstance(v, kind) and getattr(v, "__module__", None) == module.__name__
    }  # fmt: skip


def install_datarobot_drum_alias() -> bool:
    """Register `datarobot_drum` alias modules unless the real package is importable."""
    if "datarobot_drum" in sys.modules:
        return False
    if importlib.util.find_spec("datarobot_drum") is not None:
        return False
    exceptions = {k: v for k, v in vars(errors).items() if isinstance(v, type)}
    rp_exceptions = {k: v for k, v in vars(runtime_params).items() if isinstance(v, type)}
    interfaces = _defined_in(custom_task, type)
    secrets = _defined_in(user_secrets, object)
    tasks = "datarobot_drum.custom_task_interfaces"
    modules = {
        "datarobot_drum": _module(
            "datarobot_drum",
            RuntimeParameters=runtime_params.RuntimeParameters,
            CustomHTTPError=errors.CustomHTTPError,
            __version__=drum.DRUM_COMPAT_VERSION,
        ),
        "datarobot_drum.drum": _module("datarobot_drum.drum"),
        "datarobot_drum.drum.exceptions": _module("datarobot_drum.drum.exceptions", **exceptions),
        "datarobot_drum.drum.enum": _module(
            "datarobot_drum.drum.enum", TargetType=target.TargetType, PRED_COLUMN=target.PRED_COLUMN
        ),
        tasks: _module(tasks, **interfaces, **{k: v for k, v in secrets.items() if k.endswith("Secret")}),
        f"{tasks}.custom_task_interface": _module(
            f"{tasks}.custom_task_interface", **interfaces, **secrets,
            secrets_injection_context=custom_task.secrets_injection_context,
        ),
        f"{tasks}.estimator_interfaces": _module(f"{tasks}.estimator_interfaces", **interfaces),
        f"{tasks}.transform_interface": _module(f"{tasks}.transform_interface", **interfaces),
        f"{tasks}.user_secrets": _module(f"{tasks}.user_secrets", **secrets),
        "datarobot_drum.runtime_parameters": _module("datarobot_drum.runtime_parameters"),
        "datarobot_drum.runtime_parameters.runtime_parameters": _module(
            "datarobot_drum.runtime_parameters.runtime_parameters",
            RuntimeParameters=runtime_params.RuntimeParameters,
        ),
        "datarobot_drum.runtime_parameters.exceptions": _module(
            "datarobot_drum.runtime_parameters.exceptions", **rp_exceptions
        ),
    }
    for name, module in modules.items():
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(modules[parent], child, module)
    return True
