"""User secrets of CustomTask models, as DRUM 1.18.1 hands them over.

Secrets come from JSON files in `--user-secrets-mount-path` (one file per secret, named by its key) and
from environment variables `<--user-secrets-prefix>_<KEY>` holding JSON; a mounted file wins over an
environment variable of the same key. Each JSON object names its `credential_type`, which picks one of
the dataclasses below (unknown fields are dropped). While secrets are in use, their values are replaced
by `*****` in everything written to stdout, stderr and the logs (`scrub_outputs`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TextIO

MASK = "*****"


class UnsupportedSecretError(Exception):
    """A secret's `credential_type` is not one DRUM knows."""


def _known_fields(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in values.items() if k in names}


@dataclass(repr=False)
class ScrubReprMixin:
    """A repr that never shows a string field's value."""

    def __repr__(self) -> str:
        def shown(value: Any) -> Any:
            return MASK if isinstance(value, str) else value

        return f"{type(self).__name__}({', '.join(f'{f.name}={shown(getattr(self, f.name))!r}' for f in fields(self))})"


@dataclass(repr=False)
class AbstractSecret(ScrubReprMixin):
    def is_partial_secret(self) -> bool:
        """True when part of the credential (an admin-owned config) is stored apart from it."""
        return any(getattr(self, key, None) for key in ("config_id", "oauth_config_id"))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AbstractSecret:
        return cls(**_known_fields(cls, values))


@dataclass(repr=False)
class BasicSecret(AbstractSecret):
    username: str
    password: str
    snowflake_account_name: str | None = None


@dataclass(repr=False)
class OauthSecret(AbstractSecret):
    token: str
    refresh_token: str


@dataclass(repr=False)
class S3Secret(AbstractSecret):
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    config_id: str | None = None


@dataclass(repr=False)
class AzureSecret(AbstractSecret):
    azure_connection_string: str


@dataclass(repr=False)
class AzureServicePrincipalSecret(AbstractSecret):
    client_id: str
    client_secret: str
    azure_tenant_id: str


@dataclass(repr=False)
class SnowflakeOauthUserAccountSecret(AbstractSecret):
    client_id: str | None
    client_secret: str | None
    snowflake_account_name: str | None
    oauth_issuer_type: str | None = None
    oauth_issuer_url: str | None = None
    oauth_scopes: str | None = None
    oauth_config_id: str | None = None


@dataclass(repr=False)
class SnowflakeKeyPairUserAccountSecret(AbstractSecret):
    username: str | None
    private_key_str: str | None
    passphrase: str | None = None
    config_id: str | None = None


@dataclass(repr=False)
class AdlsGen2OauthSecret(AbstractSecret):
    client_id: str
    client_secret: str
    oauth_scopes: str


@dataclass(repr=False)
class TableauAccessTokenSecret(AbstractSecret):
    token_name: str
    personal_access_token: str


@dataclass(repr=False)
class DatabricksAccessTokenAccountSecret(AbstractSecret):
    databricks_access_token: str


@dataclass(repr=False)
class ApiTokenSecret(AbstractSecret):
    api_token: str


@dataclass(repr=False)
class GCPKey(ScrubReprMixin):
    type: str
    project_id: str | None = None
    private_key_id: str | None = None
    private_key: str | None = None
    client_email: str | None = None
    client_id: str | None = None
    auth_uri: str | None = None
    token_uri: str | None = None
    auth_provider_x509_cert_url: str | None = None
    client_x509_cert_url: str | None = None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GCPKey:
        return cls(**_known_fields(cls, values))


@dataclass(repr=False)
class GCPSecret(AbstractSecret):
    gcp_key: GCPKey | None = None
    config_id: str | None = None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GCPSecret:
        known = _known_fields(cls, values)
        if isinstance(known.get("gcp_key"), dict):
            known["gcp_key"] = GCPKey.from_dict(known["gcp_key"])
        return cls(**known)


#: `credential_type` (any case) → its class.
SECRET_TYPES: dict[str, type[AbstractSecret]] = {
    "BASIC": BasicSecret,
    "OAUTH": OauthSecret,
    "GCP": GCPSecret,
    "S3": S3Secret,
    "AZURE": AzureSecret,
    "AZURE_SERVICE_PRINCIPAL": AzureServicePrincipalSecret,
    "SNOWFLAKE_OAUTH_USER_ACCOUNT": SnowflakeOauthUserAccountSecret,
    "SNOWFLAKE_KEY_PAIR_USER_ACCOUNT": SnowflakeKeyPairUserAccountSecret,
    "ADLS_GEN2_OAUTH": AdlsGen2OauthSecret,
    "TABLEAU_ACCESS_TOKEN": TableauAccessTokenSecret,
    "DATABRICKS_ACCESS_TOKEN_ACCOUNT": DatabricksAccessTokenAccountSecret,
    "API_TOKEN": ApiTokenSecret,
}


def secrets_factory(values: Mapping[str, Any]) -> AbstractSecret:
    """The secret object for one JSON object (UnsupportedSecretError for an unknown `credential_type`)."""
    kind = values["credential_type"]
    cls = SECRET_TYPES.get(str(kind).upper())
    if cls is None:
        raise UnsupportedSecretError(f"Unsupported secret type: {kind!r}")
    return cls.from_dict(values)


def load_secrets(mount_path: str | None, env_var_prefix: str | None,
                 environ: Mapping[str, str] | None = None) -> dict[str, AbstractSecret]:  # fmt: skip
    """All secrets by key: environment variables first, then mounted files (which win)."""
    raw: dict[str, Any] = {}
    if env_var_prefix:
        prefix = f"{env_var_prefix}_"
        env = os.environ if environ is None else environ
        raw.update({k.replace(prefix, ""): json.loads(v) for k, v in env.items() if k.startswith(prefix)})
    if mount_path is not None:
        for path in Path(mount_path).glob("*"):
            if path.is_file():
                raw[path.name] = json.loads(path.read_text())
    return {key: secrets_factory(values) for key, values in raw.items()}


# --- redaction -------------------------------------------------------------------------------------------


def sensitive_values(secrets: Iterable[AbstractSecret]) -> list[str]:
    """Every non-empty value inside the secrets (nested ones too), longest first so that a value
    containing another is masked whole."""
    found: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for inner in value.values():
                collect(inner)
        elif value:
            found.add(value)

    for secret in secrets:
        collect(dataclasses.asdict(secret))
    return sorted(found, key=lambda v: (-len(v), v))


def scrub(values: list[str], text: str) -> str:
    for value in values:
        text = text.replace(value, MASK)
    return text


class TextStreamSecretsScrubber:
    """A text stream that masks secret values in what is written through it."""

    def __init__(self, secrets: Iterable[AbstractSecret], stream: TextIO):
        self.stream = stream
        self.sensitive_data = sensitive_values(secrets)

    def write(self, text: str) -> int:
        return self.stream.write(scrub(self.sensitive_data, text))

    def writelines(self, lines: Iterable[str]) -> None:
        self.stream.writelines(scrub(self.sensitive_data, line) for line in lines)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class SecretsScrubberFilter(logging.Filter):
    """A logging filter that masks secret values in a record's message and arguments."""

    def __init__(self, secrets: Iterable[AbstractSecret]):
        super().__init__()
        self.sensitive_data = sensitive_values(secrets)

    def _clean(self, value: Any) -> Any:
        return scrub(self.sensitive_data, value) if isinstance(value, str) else value

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._clean(record.msg)
        if isinstance(record.args, dict):
            record.args = {k: self._clean(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(self._clean(v) for v in record.args)
        return True


def _loggers() -> list[Any]:
    return [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]


def scrub_outputs(secrets: Iterable[AbstractSecret]) -> None:
    """Mask the secrets' values in sys.stdout, sys.stderr and every logger that exists now (DRUM's
    `patch_outputs_to_scrub_secrets`); nothing when there are no secrets."""
    secrets = list(secrets)
    if not secrets:
        return
    sys.stdout = TextStreamSecretsScrubber(secrets, sys.stdout)  # type: ignore[assignment]
    sys.stderr = TextStreamSecretsScrubber(secrets, sys.stderr)  # type: ignore[assignment]
    secrets_filter = SecretsScrubberFilter(secrets)
    for logger in _loggers():
        if hasattr(logger, "addFilter"):
            logger.addFilter(secrets_filter)


def unscrub_outputs() -> None:
    """Undo `scrub_outputs`."""
    while isinstance(sys.stdout, TextStreamSecretsScrubber):
        sys.stdout = sys.stdout.stream
    while isinstance(sys.stderr, TextStreamSecretsScrubber):
        sys.stderr = sys.stderr.stream
    for logger in _loggers():
        for found in list(getattr(logger, "filters", [])):
            if isinstance(found, SecretsScrubberFilter):
                logger.removeFilter(found)
