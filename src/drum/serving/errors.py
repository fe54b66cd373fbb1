"""HTTP-level errors raised by handlers and how any exception becomes DRUM's error response."""

from __future__ import annotations

import logging

from drum.errors import BaseCustomUserError
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
    """Flask's 400: answered as `{"error": ...}` without the ERROR prefix, as DRUM does."""

    def __init__(self, description: str = BAD_REQUEST_TEXT):
        super().__init__(json_response({"error": description}, 400))


def response_for_exception(exc: BaseException) -> ResponseData:
    """Any exception from a handler → the response DRUM gives for it (user errors keep their code)."""
    if isinstance(exc, HTTPError):
        return exc.response
    logger.exception(exc)
    if isinstance(exc, BaseCustomUserError):
        status = getattr(exc, "status_code", 400)
        return json_response({"message": str(exc)}, status, [(HEADER_USER_HTTP_ERROR, "true")])
    return error_response(str(exc), 500)
