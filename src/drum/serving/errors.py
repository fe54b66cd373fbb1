"""HTTP-level errors raised by handlers and how any exception becomes DRUM's error response."""

from __future__ import annotations

import logging

from drum.errors import BaseCustomUserError, DrumInputError
from drum.serving.response import ResponseData, error_response, json_response

logger = logging.getLogger("drum.serving")

HEADER_USER_HTTP_ERROR = "X-Drum-User-Http-Error"
NOT_FOUND_TEXT = (
    "404 Not Found: The requested URL was not found on the server. If you entered the URL manually "
    "please check your spelling and try again."
)
METHOD_NOT_ALLOWED_TEXT = "405 Method Not Allowed: The method is not allowed for the requested URL."
BAD_REQUEST_TEXT = "The browser (or proxy) sent a request that this server could not understand."
UNSUPPORTED_JSON_TEXT = (
    "415 Unsupported Media Type: Did not attempt to load JSON data because the request Content-Type "
    "was not 'application/json'."
)


class HTTPError(Exception):
    """An error with a status code and a ready response (DRUM's 4xx answers)."""

    def __init__(self, response: ResponseData):
        super().__init__(response.status)
        self.response = response


class BadRequest(HTTPError):
    """A body that cannot be read as the route requires: 400 in DRUM's error format (DRUM answered
    Flask's `{"error": ...}` body here; see docs/compatibility.md)."""

    def __init__(self, description: str = BAD_REQUEST_TEXT):
        super().__init__(error_response(description, 400))


def response_for_exception(exc: BaseException) -> ResponseData:
    """Any exception from a handler → the response DRUM gives for it (user errors keep their code)."""
    if isinstance(exc, HTTPError):
        return exc.response
    if isinstance(exc, DrumInputError):  # the client's payload, not a server failure: no traceback
        logger.warning("Unreadable request payload: %s", exc)
        return error_response(str(exc), 422)
    logger.exception(exc)
    if isinstance(exc, BaseCustomUserError):
        status = getattr(exc, "status_code", 400)
        return json_response({"message": str(exc)}, status, [(HEADER_USER_HTTP_ERROR, "true")])
    return error_response(str(exc), 500)
