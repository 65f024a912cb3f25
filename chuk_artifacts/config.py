"""Configuration: every environment variable chuk-artifacts reads is read here, and nowhere else.

``Settings.from_env()`` reads the environment once; constructor arguments of ``ArtifactStore``
override it. Nothing is read at import time.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from .errors import InvalidArgumentError

__all__ = [
    "ENVIRONMENT_VARIABLES",
    "Settings",
    "PluginSettings",
    "configure_memory",
    "configure_filesystem",
    "configure_s3",
    "configure_ibm_cos",
    "normalize_provider",
]

#: Spellings of the published package that mean the same backend here.
PROVIDER_ALIASES = {
    "vfs-memory": "memory",
    "vfs-filesystem": "filesystem",
    "vfs-s3": "s3",
    "vfs-sqlite": "sqlite",
    "vfs-ibm-cos": "ibm_cos",
    "vfs-azure": "azure",
    "azure_blob": "azure",
    "vfs-gcs": "gcs",
    "google": "gcs",
    "ibm-cos": "ibm_cos",
    "local": "filesystem",
    "fs": "filesystem",
}
SESSION_PROVIDER_ALIASES = {"memory": "catalog", "sqlite": "catalog", "sql": "catalog"}

_TRUE = {"1", "true", "yes", "on"}
#: ``Settings.durability``: what an acknowledged write survives.
DURABILITY_LEVELS = ("process", "power")

#: The longest lifetime anything may have: an artifact's TTL, a session's, an upload's (a century,
#: so that no expiry overflows a date or a database column).
MAX_TTL = 100 * 365 * 86400
MAX_HOURS = MAX_TTL // 3600
#: The largest ``text_index_bytes``: PostgreSQL refuses a ``tsvector`` over 1 MiB (its words and
#: their positions), and the index keeps a copy of the text it indexes.
MAX_TEXT_INDEX_BYTES = 256 * 1024
#: The statement timeout of a PostgreSQL catalog by default (seconds; ``0`` turns it off).
DEFAULT_STATEMENT_TIMEOUT = 30.0


def _check_number(name: str, value: Any, low: float, high: float, *, integer: bool, var: str) -> None:
    """Refuse a setting that is not a finite number in ``[low, high]`` (an integer if asked)."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not (math.isfinite(value) and low <= value <= high):
        kind = "an integer" if integer else "a number"
        raise InvalidArgumentError(f"{name} ({var}) must be {kind} from {low:g} to {high:g}, not {value!r}")


# (field, environment variable, type) — the single table of what is read from where.
_ENV: tuple[tuple[str, str, type], ...] = (
    ("storage_provider", "ARTIFACT_PROVIDER", str),
    ("session_provider", "SESSION_PROVIDER", str),
    ("sandbox_id", "ARTIFACT_SANDBOX_ID", str),
    ("bucket", "ARTIFACT_BUCKET", str),
    ("fs_root", "ARTIFACT_FS_ROOT", str),
    ("catalog_url", "ARTIFACT_CATALOG_URL", str),
    ("sqlite_path", "ARTIFACT_SQLITE_PATH", str),
    ("session_ttl_hours", "ARTIFACT_SESSION_TTL_HOURS", float),
    ("default_ttl", "ARTIFACT_DEFAULT_TTL", int),
    ("strict", "ARTIFACT_STRICT", bool),
    ("verify_reads", "ARTIFACT_VERIFY_READS", bool),
    ("durability", "ARTIFACT_DURABILITY", str),
    ("max_meta_bytes", "ARTIFACT_MAX_META_BYTES", int),
    ("text_index_bytes", "ARTIFACT_TEXT_INDEX_BYTES", int),
    ("public_url", "ARTIFACT_PUBLIC_URL", str),
    ("presign_secret", "ARTIFACT_PRESIGN_SECRET", str),
    ("upload_ttl", "ARTIFACT_UPLOAD_TTL", int),
    ("multipart_min_part_size", "ARTIFACT_MULTIPART_MIN_PART_SIZE", int),
    ("quota_user_bytes", "ARTIFACT_QUOTA_USER_BYTES", int),
    ("quota_user_count", "ARTIFACT_QUOTA_USER_COUNT", int),
    ("quota_sandbox_bytes", "ARTIFACT_QUOTA_SANDBOX_BYTES", int),
    ("quota_sandbox_count", "ARTIFACT_QUOTA_SANDBOX_COUNT", int),
    ("session_redis_url", "SESSION_REDIS_URL", str),
    ("aws_access_key_id", "AWS_ACCESS_KEY_ID", str),
    ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY", str),
    ("aws_region", "AWS_REGION", str),
    ("s3_endpoint_url", "S3_ENDPOINT_URL", str),
    ("s3_sse_algorithm", "S3_SSE_ALGORITHM", str),
    ("s3_connect_timeout", "S3_CONNECT_TIMEOUT", float),
    ("s3_read_timeout", "S3_READ_TIMEOUT", float),
    ("statement_timeout", "ARTIFACT_STATEMENT_TIMEOUT", float),
    ("max_open_uploads", "ARTIFACT_MAX_OPEN_UPLOADS", int),
    ("ibm_cos_access_key", "IBM_COS_ACCESS_KEY", str),
    ("ibm_cos_secret_key", "IBM_COS_SECRET_KEY", str),
    ("ibm_cos_endpoint", "IBM_COS_ENDPOINT", str),
    ("azure_connection_string", "AZURE_STORAGE_CONNECTION_STRING", str),
    ("azure_account_name", "AZURE_STORAGE_ACCOUNT_NAME", str),
    ("azure_account_key", "AZURE_STORAGE_ACCOUNT_KEY", str),
    ("gcs_project", "GCS_PROJECT", str),
    ("gcs_token", "GCS_TOKEN", str),
    ("gcs_endpoint_url", "GCS_ENDPOINT_URL", str),
)


#: Read by the plugin manager once per process, when it first loads plugins (``plugins.py``).
_PLUGIN_ENV: tuple[tuple[str, str, type], ...] = (
    ("only", "CHUK_ARTIFACTS_PLUGINS", str),
    ("trace", "CHUK_ARTIFACTS_TRACE_PLUGINS", bool),
)


@dataclass(frozen=True)
class PluginSettings:
    """How plugins are loaded: ``only`` the named entry points (``None``: all) and ``trace``.

    ``CHUK_ARTIFACTS_PLUGINS=redis,audit`` loads only those entry points of the
    ``chuk_artifacts`` group; set but empty, it loads none (built-ins are always registered).
    ``CHUK_ARTIFACTS_TRACE_PLUGINS=1`` logs every hook call (logger ``chuk_artifacts.plugins``).
    """

    only: tuple[str, ...] | None = None
    trace: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "PluginSettings":
        environ = os.environ if environ is None else environ
        raw = environ.get("CHUK_ARTIFACTS_PLUGINS")
        only = None if raw is None else tuple(n.strip() for n in raw.split(",") if n.strip())
        trace = _convert(environ.get("CHUK_ARTIFACTS_TRACE_PLUGINS", ""), bool, "CHUK_ARTIFACTS_TRACE_PLUGINS")
        return cls(only=only, trace=trace)


def normalize_provider(name: str) -> str:
    name = name.strip().lower()
    return PROVIDER_ALIASES.get(name, name)


@dataclass(frozen=True)
class Quotas:
    """Byte and count limits per user and per sandbox; ``None`` is no limit."""

    user_bytes: int | None = None
    user_count: int | None = None
    sandbox_bytes: int | None = None
    sandbox_count: int | None = None

    @property
    def enabled(self) -> bool:
        return any(v is not None for v in (self.user_bytes, self.user_count, self.sandbox_bytes, self.sandbox_count))


@dataclass(frozen=True)
class Settings:
    """Everything that configures a store. Field defaults are the documented defaults."""

    storage_provider: str = "memory"
    session_provider: str = "catalog"
    sandbox_id: str = "default"
    bucket: str = "artifacts"
    fs_root: str = "./artifacts"
    catalog_url: str | None = None
    sqlite_path: str = "./artifacts.db"
    session_ttl_hours: float = 24.0
    default_ttl: int = 900
    strict: bool = False
    verify_reads: bool = False
    #: What an acknowledged write survives (``docs/reliability.md``): ``process`` (default) a
    #: killed process; ``power`` also an OS crash or power loss (SQLite ``synchronous=FULL``,
    #: and local files' directories fsynced after each rename).
    durability: str = "process"
    max_meta_bytes: int = 65536
    #: How much of a text-like artifact's bytes (text/*, JSON) full-text search indexes: the
    #: first this many bytes (``0``: none; names, summaries and meta values are always indexed).
    text_index_bytes: int = 65536
    public_url: str = "http://127.0.0.1:8787"
    presign_secret: str | None = None
    upload_ttl: int = 86400
    multipart_min_part_size: int = 5 * 1024 * 1024
    #: Optional limits (``None``: none) on the bytes and artifacts of each user and of the sandbox.
    quota_user_bytes: int | None = None
    quota_user_count: int | None = None
    quota_sandbox_bytes: int | None = None
    quota_sandbox_count: int | None = None
    session_redis_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_region: str = "us-east-1"
    s3_endpoint_url: str | None = None
    s3_sse_algorithm: str | None = None
    #: Seconds to wait for S3 to accept a connection, and for each answer once connected.
    #: Requests are retried, so a dead or silent endpoint fails after a few times these.
    s3_connect_timeout: float = 5.0
    s3_read_timeout: float = 60.0
    #: Seconds a PostgreSQL catalog lets one statement run before cancelling it (``0``: no
    #: limit), so that no query, however it was built, ties the database up.
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT
    #: Presigned and multipart uploads one owner (a user, or else a session) may have open at
    #: once; bytes in open uploads count against the quota when the upload completes.
    max_open_uploads: int = 100
    ibm_cos_access_key: str | None = None
    ibm_cos_secret_key: str | None = None
    ibm_cos_endpoint: str | None = None
    #: Azure Blob Storage (``azure``): a connection string, or an account name with its key or
    #: with the default Azure credential chain. The container is ``bucket``.
    azure_connection_string: str | None = None
    azure_account_name: str | None = None
    azure_account_key: str | None = None
    #: Google Cloud Storage (``gcs``): project, credentials (``google_default``, ``anon``, a
    #: service-account JSON file; unset: the default chain) and an endpoint for emulators.
    gcs_project: str | None = None
    gcs_token: str | None = None
    gcs_endpoint_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Read the environment, then apply ``overrides`` (``None`` values are ignored)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field, var, kind in _ENV:
            raw = environ.get(var)
            if raw is None or raw == "":
                continue
            values[field] = _convert(raw, kind, var)
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise InvalidArgumentError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).normalized()

    def normalized(self) -> "Settings":
        from .grid import validate_id

        validate_id(self.sandbox_id, "sandbox_id")
        var = {field: env for field, env, _kind in _ENV}
        for name, low, high, integer in (
            ("default_ttl", 1, MAX_TTL, True),
            ("upload_ttl", 1, MAX_TTL, True),
            ("session_ttl_hours", 1 / 3600, MAX_HOURS, False),
            ("max_meta_bytes", 2, 2**31 - 1, True),
            ("text_index_bytes", 0, MAX_TEXT_INDEX_BYTES, True),
            ("multipart_min_part_size", 0, 5 * 1024**3, True),
            ("statement_timeout", 0, 86400, False),
            ("max_open_uploads", 1, 2**31 - 1, True),
        ):
            _check_number(name, getattr(self, name), low, high, integer=integer, var=var[name])
        for name in ("quota_user_bytes", "quota_user_count", "quota_sandbox_bytes", "quota_sandbox_count"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63):
                raise InvalidArgumentError(f"{name} must be a non-negative integer (below 2**63) or None")
        for name in ("s3_connect_timeout", "s3_read_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
                raise InvalidArgumentError(f"{name} must be more than 0 and at most 3600 seconds")
        durability = self.durability.strip().lower() if isinstance(self.durability, str) else self.durability
        if durability not in DURABILITY_LEVELS:
            raise InvalidArgumentError(
                f"durability must be one of {', '.join(DURABILITY_LEVELS)} (ARTIFACT_DURABILITY), "
                f"not {self.durability!r}"
            )
        session = self.session_provider.strip().lower()
        return replace(
            self,
            durability=durability,
            storage_provider=normalize_provider(self.storage_provider),
            session_provider=SESSION_PROVIDER_ALIASES.get(session, session),
            public_url=self.public_url.rstrip("/"),
        )

    @property
    def quotas(self) -> "Quotas":
        return Quotas(self.quota_user_bytes, self.quota_user_count, self.quota_sandbox_bytes, self.quota_sandbox_count)

    @property
    def session_ttl_seconds(self) -> float:
        return self.session_ttl_hours * 3600.0

    def resolved_catalog_url(self) -> str:
        """Where the catalog lives: in memory for the memory provider, else a SQLite file
        (``catalog.db`` in ``fs_root`` for filesystem, else ``sqlite_path``: for the ``sqlite``
        provider the same file as its bytes)."""
        if self.catalog_url:
            return self.catalog_url
        if self.storage_provider == "memory":
            return "sqlite://"
        if self.storage_provider == "filesystem":
            path = Path(self.fs_root).expanduser().resolve() / "catalog.db"
        else:
            path = Path(self.sqlite_path).expanduser().resolve()
        return f"sqlite:///{path}"

    def sqlite_blob_path(self) -> str:
        """The SQLite file of the ``sqlite`` backend's bytes: the catalog's own file, so that the
        store is one file (``ARTIFACT_SQLITE_PATH``, or the file ``ARTIFACT_CATALOG_URL`` names);
        with a catalog elsewhere (PostgreSQL, in memory) the bytes stay at ``ARTIFACT_SQLITE_PATH``."""
        if self.catalog_url:
            from sqlalchemy.engine import make_url

            url = make_url(self.catalog_url)
            if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
                return str(Path(url.database).expanduser().resolve())
        return str(Path(self.sqlite_path).expanduser().resolve())

    def redacted(self) -> dict[str, Any]:
        """The settings with secrets masked, for stats and diagnostics."""
        secret = {
            "presign_secret",
            "aws_secret_access_key",
            "ibm_cos_secret_key",
            "azure_connection_string",
            "azure_account_key",
        }
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = "***" if (f.name in secret and value) else value
        return out


#: chuk-admin's home: where its default store lives when no provider is configured.
CLI_HOME_VAR = "CHUK_ARTIFACTS_HOME"

#: Every environment variable this module reads, and so every one chuk-artifacts reads (no other
#: module reads the environment): the store settings (``Settings.from_env``), plugin loading
#: (``PluginSettings.from_env``) and chuk-admin's home (``cli_home``: ``CHUK_ARTIFACTS_HOME``,
#: else ``XDG_DATA_HOME``). A test instruments those reads and fails on one missing here.
ENVIRONMENT_VARIABLES: tuple[str, ...] = (
    *(var for _field, var, _kind in _ENV),
    *(var for _field, var, _kind in _PLUGIN_ENV),
    CLI_HOME_VAR,
    "XDG_DATA_HOME",
)


def cli_home(environ: Mapping[str, str] | None = None) -> Path:
    """The directory of ``chuk-admin``'s default store.

    ``$CHUK_ARTIFACTS_HOME`` if set; else the user data directory: ``$XDG_DATA_HOME/chuk-artifacts``
    (``~/.local/share/chuk-artifacts``) on Linux and other Unixes, click's application directory
    (``~/Library/Application Support/chuk-artifacts``, ``%LOCALAPPDATA%\\chuk-artifacts``) on
    macOS and Windows.
    """
    environ = os.environ if environ is None else environ
    if environ.get(CLI_HOME_VAR):
        return Path(environ[CLI_HOME_VAR]).expanduser()
    import sys

    if sys.platform == "darwin" or sys.platform.startswith("win"):
        import click

        return Path(click.get_app_dir("chuk-artifacts", roaming=False))
    return Path(environ.get("XDG_DATA_HOME") or "~/.local/share").expanduser() / "chuk-artifacts"


def cli_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """``Settings`` as ``chuk-admin`` sees them: ``Settings.from_env`` with one difference.

    With no provider configured (no ``storage_provider`` override, no ``ARTIFACT_PROVIDER``) the
    CLI uses the persistent filesystem provider, not memory: rooted at ``fs_root`` /
    ``ARTIFACT_FS_ROOT`` if given, else at ``cli_home()``. (``ArtifactStore()`` stays in memory.)
    """
    environ = os.environ if environ is None else environ
    if not overrides.get("storage_provider") and not environ.get("ARTIFACT_PROVIDER"):
        overrides["storage_provider"] = "filesystem"
        if not overrides.get("fs_root") and not environ.get("ARTIFACT_FS_ROOT"):
            overrides["fs_root"] = str(cli_home(environ))
    return Settings.from_env(environ, **overrides)


def _convert(raw: str, kind: type, var: str) -> Any:
    if kind is bool:
        return raw.strip().lower() in _TRUE
    try:
        return kind(raw)
    except ValueError:
        raise InvalidArgumentError(f"{var}={raw!r} is not a valid {kind.__name__}") from None


def _set_env(values: Mapping[str, str | None]) -> None:
    for var, value in values.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


def configure_memory() -> None:
    """Point stores created afterwards at the in-memory backend (the default)."""
    _set_env({"ARTIFACT_PROVIDER": "memory"})


def configure_filesystem(root: str | os.PathLike[str] = "./artifacts") -> None:
    """Point stores created afterwards at local files under ``root`` (catalog beside them)."""
    _set_env({"ARTIFACT_PROVIDER": "filesystem", "ARTIFACT_FS_ROOT": os.fspath(root)})


def configure_s3(
    *,
    bucket: str,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
) -> None:
    """Point stores created afterwards at S3; without keys the default AWS credential chain applies."""
    _set_env(
        {
            "ARTIFACT_PROVIDER": "s3",
            "ARTIFACT_BUCKET": bucket,
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_REGION": region,
            "S3_ENDPOINT_URL": endpoint_url,
        }
    )


def configure_ibm_cos(*, bucket: str, access_key: str, secret_key: str, endpoint: str) -> None:
    """Point stores created afterwards at IBM Cloud Object Storage (S3-compatible, HMAC keys)."""
    _set_env(
        {
            "ARTIFACT_PROVIDER": "ibm_cos",
            "ARTIFACT_BUCKET": bucket,
            "IBM_COS_ACCESS_KEY": access_key,
            "IBM_COS_SECRET_KEY": secret_key,
            "IBM_COS_ENDPOINT": endpoint,
        }
    )
