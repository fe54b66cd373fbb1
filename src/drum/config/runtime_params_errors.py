"""Runtime parameter exceptions, named as in ``datarobot_drum.runtime_parameters.exceptions``."""


class RuntimeParameterException(Exception):
    """Base class of every runtime parameter error."""


class InvalidJsonException(RuntimeParameterException):
    """The ``MLOPS_RUNTIME_PARAM_*`` value is not valid JSON."""


class InvalidRuntimeParam(RuntimeParameterException):
    """The ``MLOPS_RUNTIME_PARAM_*`` JSON does not match any runtime parameter type."""


class InvalidInputFilePath(RuntimeParameterException):
    """A file needed by the runtime parameter values loader is missing or not given."""


class InvalidEmptyYamlContent(RuntimeParameterException):
    """A YAML file read by the runtime parameter values loader is empty."""


class InvalidYamlContent(RuntimeParameterException):
    """A YAML file read by the runtime parameter values loader is malformed."""


class ErrorLoadingRuntimeParameter(RuntimeParameterException):
    """A runtime parameter definition or value failed validation."""
