"""Exception types shared by every layer, named as in DRUM so user code and messages match."""

HTTP_BAD_REQUEST = 400


class DrumException(Exception):
    """Base drum exception."""


class DrumCommonException(DrumException):
    """A user-facing error: bad options, bad model directory, bad model output."""


class DrumInputError(DrumCommonException):
    """The request's payload cannot be read (not CSV, not UTF-8, not Matrix Market): the client's error,
    answered 422 by the server (DRUM answered 500)."""


class DrumFormatSchemaException(DrumException):
    """model-metadata.yaml cannot be parsed with the strict schema."""


class DrumSchemaValidationException(DrumException):
    """Data does not match the typeSchema of model-metadata.yaml."""


class DrumTransformException(DrumException):
    """An error specific to transform models."""


class DrumSerializationError(DrumException):
    """A model artifact could not be loaded."""


class DrumPythonModelAdapterError(DrumException):
    """A user hook raised; the message names the hook, DRUM-style."""


class BaseCustomUserError(Exception):
    """Base class for errors raised on purpose by user model code."""


class CustomHTTPError(BaseCustomUserError):
    """Raise in a hook to answer with a specific HTTP status code and message."""

    def __init__(
        self, message: str = "User's HTTP error in custom model", status_code: int = HTTP_BAD_REQUEST
    ):
        super().__init__(message)
        self.status_code = status_code
