"""`ServerConfig`: everything `drum server` needs to know, read and validated once (in `drum.cli.server`).

It joins the command line (address, workers, error server, ...), the settings table (`Settings`) and the
few plain DRUM environment variables the server reads (`URL_PREFIX`, `TEST_URL_HOST`). Everything below
`cli/` receives this frozen object; nothing there reads the environment or a setting by name. Worker
processes get it as JSON (`to_json` / `from_json`), so they never read or warn about settings again.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from drum.config.settings import SETTINGS, Settings
from drum.errors import DrumCommonException

#: Flask's default port, which DRUM uses when --address has no port.
DEFAULT_PORT = 5000
#: The environment variable that carries the parent's config to worker processes.
CONFIG_ENV = "DRUM_SERVER_CONFIG"
_SECRETS = tuple(f.name for f in dataclasses.fields(Settings) if f.metadata["setting"].type == "secret")


def parse_address(address: str) -> tuple[str, int]:
    """`host:port` → (host, port); no port: 127.0.0.1:5000 as DRUM; an empty host with a port: all interfaces."""
    host, _, port = address.partition(":")
    if not port:
        return host or "127.0.0.1", DEFAULT_PORT
    try:
        return host or "0.0.0.0", int(port)
    except ValueError:
        raise DrumCommonException(f"Invalid --address {address!r}: the port must be a number") from None


def normalize_url_prefix(raw: str | None) -> str:
    """`URL_PREFIX` normalised to `/a/b` (or "" when unset); `test`, `/test/` and `/test` are the same."""
    stripped = (raw or "").strip().strip("/")
    return f"/{stripped}" if stripped else ""


@dataclass(frozen=True)
class ServerConfig:
    """One `drum server`'s configuration (see the module docstring)."""

    code_dir: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    #: Worker processes (--max-workers, MAX_WORKERS, runtime parameter CUSTOM_MODEL_WORKERS); at least 1.
    workers: int = 1
    with_error_server: bool = False
    show_stacktrace: bool = False
    logging_level: str = "warning"
    #: `URL_PREFIX`, normalised (see `normalize_url_prefix`).
    url_prefix: str = ""
    #: Host the NIM watchdog polls this server's /info/ on (`TEST_URL_HOST`, as DRUM).
    watchdog_host: str = "localhost"
    settings: Settings = field(default_factory=Settings)

    @classmethod
    def from_options(
        cls, options: object, environ: Mapping[str, str] | None = None, warn: Callable[[str], None] | None = None
    ) -> ServerConfig:
        """Read the options of `drum server` and every setting (invalid ones warn here, once)."""
        env = os.environ if environ is None else environ
        host, port = parse_address(getattr(options, "address", None) or "")
        return cls(
            code_dir=str(getattr(options, "code_dir", "") or ""),
            host=host,
            port=port,
            workers=max(1, int(getattr(options, "max_workers", 0) or 0)),
            with_error_server=bool(getattr(options, "with_error_server", False)),
            show_stacktrace=bool(getattr(options, "show_stacktrace", False)),
            logging_level=getattr(options, "logging_level", None) or "warning",
            url_prefix=normalize_url_prefix(env.get("URL_PREFIX")),
            watchdog_host=env.get("TEST_URL_HOST", "localhost"),
            settings=Settings.read(env, warn),
        )

    def replace(self, **changes: object) -> ServerConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def cors_origins(self) -> list[str] | None:
        """The allowed CORS origins, or None when CORS is off."""
        if not self.settings.cors_enabled:
            return None
        return [o.strip() for o in self.settings.cors_origins.split(",") if o.strip()]

    def to_json(self) -> str:
        """This config for a worker process; secrets are left out (workers get TLS from uvicorn's config)."""
        data = dataclasses.asdict(self)
        for name in _SECRETS:
            data["settings"][name] = None
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        data = json.loads(text)
        return cls(**{**data, "settings": Settings(**data["settings"])})


__all__ = ["CONFIG_ENV", "DEFAULT_PORT", "SETTINGS", "ServerConfig", "normalize_url_prefix", "parse_address"]
