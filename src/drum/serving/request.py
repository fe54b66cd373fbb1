"""`RequestData`: the framework-neutral request every handler receives, with DRUM's data-selection rules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from python_multipart.multipart import MultipartParser

FORM_MIMETYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


class cached_property:  # noqa: N801 - functools' name: what 3.12's is, without 3.11's lock per first read
    """A value computed on first read and kept in the instance's `__dict__` (a non-data descriptor)."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn, self.name, self.__doc__ = fn, fn.__name__, fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


@lru_cache(maxsize=256)  # a server sees few distinct Content-Type values
def parse_content_type(value: str | None) -> tuple[str, dict[str, str]]:
    """`parse_options_header`, remembered per value (the caller must not change the parameters)."""
    return parse_options_header(value)


def parse_options_header(value: str | None) -> tuple[str, dict[str, str]]:
    """`text/csv; charset=utf-8` → ("text/csv", {"charset": "utf-8"}); keeps the mimetype's case like werkzeug."""
    if not value:
        return "", {}
    mimetype, *rest = value.split(";")
    params: dict[str, str] = {}
    for item in rest:
        key, sep, val = item.partition("=")
        if sep:
            params[key.strip().lower()] = val.strip().strip('"')
    return mimetype.strip(), params


class QueryParams(dict):
    """Query arguments: `q[key]`/`q.get(key)` give the first value (werkzeug MultiDict style)."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()):
        super().__init__()
        self._lists: dict[str, list[str]] = {}
        for key, value in pairs:
            self._lists.setdefault(key, []).append(value)
            self.setdefault(key, value)

    def getlist(self, key: str) -> list[str]:
        return list(self._lists.get(key, []))

    def items_multi(self) -> list[tuple[str, str]]:
        return [(k, v) for k, values in self._lists.items() for v in values]


@dataclass(frozen=True)
class UploadedFile:
    filename: str
    data: bytes
    content_type: str | None = None


class Headers(dict):
    """Request headers for hooks: canonical names, looked up case-insensitively (werkzeug style)."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()):
        super().__init__()
        self._lower: dict[str, str] = {}
        for key, value in pairs:
            name = canonical_header_name(key)
            super().__setitem__(name, f"{self[name]}, {value}" if name in self else value)
            self._lower[name.lower()] = name

    def _key(self, key: object) -> object:
        return self._lower.get(key.lower(), key) if isinstance(key, str) else key

    def __getitem__(self, key: object) -> str:
        return super().__getitem__(self._key(key))

    def __contains__(self, key: object) -> bool:
        return super().__contains__(self._key(key))

    def get(self, key: object, default: object = None) -> object:
        return super().get(self._key(key), default)


def canonical_header_name(name: str) -> str:
    """`x-request-id` → `X-Request-Id`, the spelling werkzeug gives hooks."""
    return name.replace("_", "-").title()


@dataclass
class RequestData:
    method: str
    path: str
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    query: QueryParams = field(default_factory=QueryParams)
    path_params: dict[str, str] = field(default_factory=dict)
    #: The body as it arrives (async chunks), for routes that stream it on (the backend proxy); then
    #: `body` is empty.
    body_stream: AsyncIterator[bytes] | None = None
    #: `on_disconnect(callback)` calls `callback` once the client has left (set by event-loop servers;
    #: None where it cannot be told). It may also be called after the answer: callers check their state.
    on_disconnect: Callable[[Callable[[], None]], None] | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    def headers_dict(self) -> Headers:
        """Request headers with canonical names, as DRUM passes them to hooks."""
        return Headers(self.headers)

    @cached_property
    def content_type(self) -> tuple[str, dict[str, str]]:
        """(mimetype, parameters) of the Content-Type header; shared between requests: do not change."""
        return parse_content_type(self.header("content-type"))

    @property
    def mimetype(self) -> str:
        return self.content_type[0]

    @property
    def charset(self) -> str | None:
        return self.content_type[1].get("charset")

    @property
    def is_form(self) -> bool:
        """A body Flask parses as a form (and so consumes): urlencoded, or multipart with a boundary."""
        mimetype = self.mimetype.lower()
        if mimetype == "multipart/form-data":
            return bool(self.content_type[1].get("boundary"))
        return mimetype in FORM_MIMETYPES

    @cached_property
    def files(self) -> dict[str, UploadedFile]:
        """Multipart file parts by field name (first wins); form fields without a filename are not files."""
        if self.mimetype.lower() != "multipart/form-data":
            return {}
        boundary = self.content_type[1].get("boundary")
        if not boundary:
            return {}
        return parse_multipart_files(self.body, boundary)

    @property
    def data(self) -> bytes:
        """The raw body unless it was form data (which Flask consumes into `form`/`files`)."""
        return b"" if self.is_form else self.body


def parse_multipart_files(body: bytes, boundary: str) -> dict[str, UploadedFile]:
    files: dict[str, UploadedFile] = {}
    state: dict[str, Any] = {}

    def on_part_begin() -> None:
        state.update(headers={}, chunks=[], field=b"", value=b"")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].decode("latin-1").lower()] = state["value"].decode("latin-1")
        state["field"], state["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        state["chunks"].append(data[start:end])

    def on_part_end() -> None:
        disposition, params = parse_options_header(state["headers"].get("content-disposition"))
        name, filename = params.get("name"), params.get("filename")
        if name is None or filename is None or name in files:
            return
        files[name] = UploadedFile(filename, b"".join(state["chunks"]), state["headers"].get("content-type"))

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception:  # noqa: BLE001 - a malformed body simply has no (more) files, as with werkzeug
        pass
    return files
