"""memifd settings: command-line flags, ``MEMIFD_*`` environment variables, a YAML file.

Precedence, highest first: flags (keyword arguments), environment, the config
file, defaults. The config file may also declare ``interfaces:``, a list of
interface specs that memifd creates when it starts.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .models import InterfaceSpec

ENV_PREFIX = "MEMIFD_"
LogFormat = Literal["auto", "json", "text"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


def default_socket_dir() -> Path:
    """``/run/memifd`` if usable, else ``$XDG_RUNTIME_DIR/memifd``, else ``/tmp/memifd-<uid>``."""
    candidates = [Path("/run/memifd")]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        candidates.append(Path(runtime) / "memifd")
    for path in candidates:
        if _writable_or_creatable(path):
            return path
    return Path(f"/tmp/memifd-{os.getuid()}")


def _writable_or_creatable(path: Path) -> bool:
    if path.is_dir():
        return os.access(path, os.W_OK | os.X_OK)
    parent = path.parent
    return not path.exists() and parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


def split_address(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) into its parts; raises ValueError."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port {port_text!r} in {value!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} in {value!r} is outside 0..65535")
    return host, port


def is_loopback(host: str) -> bool:
    """True for loopback addresses and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _YamlFileSource(PydanticBaseSettingsSource):
    """Settings from a YAML mapping (the ``--config`` file)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole mapping

    def __call__(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            text = self.path.read_text()
        except OSError as exc:
            raise ValueError(f"config: cannot read {self.path}: {exc.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"config: {self.path} is not valid YAML: {exc}") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ValueError(f"config: {self.path} must hold a mapping, not {type(data).__name__}")
        return {str(key).replace("-", "_"): value for key, value in data.items()}


class Settings(BaseSettings):
    """Everything ``memifd serve`` needs; see the module docstring for precedence."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_default=True
    )

    socket_dir: Path = Field(
        default_factory=default_socket_dir,
        description="Directory for control sockets given as relative names.",
    )
    http_addr: str = Field(default="127.0.0.1:8080", description="REST API listen address.")
    grpc_addr: str = Field(default="127.0.0.1:50051", description="gRPC API listen address.")
    token_file: Path | None = Field(default=None, description="File holding the API token.")
    token: SecretStr | None = Field(default=None, description="API token (prefer token_file).")
    insecure: bool = Field(
        default=False, description="Allow a non-loopback listen address without a token."
    )
    config: Path | None = Field(default=None, description="YAML file with settings.")
    tls_cert: Path | None = Field(default=None, description="PEM certificate for HTTP and gRPC.")
    tls_key: Path | None = Field(default=None, description="PEM private key for tls_cert.")
    root_path: str = Field(default="", description="URL prefix when behind a proxy.")
    log_format: LogFormat = Field(default="auto", description="auto|json|text.")
    log_level: LogLevel = Field(default="info", description="debug|info|warning|error|critical.")
    access_log: bool = Field(default=False, description="Log every HTTP request.")
    worker_stall_unready: float = Field(
        default=5.0, ge=1, le=3600,
        description="Seconds the worker's loop may go without turning before /readyz, gRPC "
        "health and memifd_ready say not ready.",
    )
    worker_stall_unhealthy: float = Field(
        default=30.0, ge=1, le=3600,
        description="Seconds the worker's loop may go without turning before /healthz fails "
        "(Kubernetes then restarts memifd).",
    )
    command_timeout: float = Field(
        default=10.0, gt=0, le=3600,
        description="Seconds an API call waits for the worker; a change it has not started "
        "by then is cancelled.",
    )
    shutdown_timeout: float = Field(
        default=5.0, gt=0, le=3600,
        description="Seconds SIGTERM may take; then memifd removes its socket files and exits.",
    )
    interfaces: list[InterfaceSpec] = Field(
        default_factory=list, description="Interfaces created at start."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        given = getattr(init_settings, "init_kwargs", {}).get("config")
        path = given if given is not None else os.environ.get(f"{ENV_PREFIX}CONFIG") or None
        return init_settings, env_settings, _YamlFileSource(
            settings_cls, Path(path) if path is not None else None
        )

    @field_validator("token_file", "config", "tls_cert", "tls_key", "token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # MEMIFD_TOKEN_FILE= (empty) switches a file off instead of naming the cwd.
        return None if value == "" else value

    @field_validator("http_addr", "grpc_addr")
    @classmethod
    def _address(cls, value: str) -> str:
        split_address(value)
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("root_path")
    @classmethod
    def _root_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError(f"root_path must start with '/', got {value!r}")
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.token is not None and not self.token.get_secret_value():
            self.token = None
        if self.token is None and self.token_file is not None:
            self.token = SecretStr(_read_token(self.token_file))
        names = [spec.name for spec in self.interfaces]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"interfaces: duplicate names {', '.join(duplicates)}")
        if self.worker_stall_unhealthy < self.worker_stall_unready:
            raise ValueError(
                f"worker_stall_unhealthy ({self.worker_stall_unhealthy:g}) must be at least "
                f"worker_stall_unready ({self.worker_stall_unready:g})"
            )
        if self.token is None and not self.insecure:
            for field in ("http_addr", "grpc_addr"):
                host, _ = split_address(getattr(self, field))
                if not is_loopback(host):
                    raise ValueError(
                        f"{field} {getattr(self, field)} is not a loopback address and no token "
                        "is set: set MEMIFD_TOKEN or --token-file, or pass --insecure"
                    )
        return self

    @property
    def token_value(self) -> str | None:
        """The API token, or None when authentication is off."""
        return self.token.get_secret_value() if self.token is not None else None

    @property
    def tls(self) -> bool:
        """True when HTTP and gRPC serve TLS."""
        return self.tls_cert is not None

    def resolve_socket(self, socket: str) -> str:
        """A spec's ``socket``: abstract (``@name``) and absolute paths as they are,
        relative names under :attr:`socket_dir`."""
        if socket.startswith("@") or os.path.isabs(socket):
            return socket
        return os.path.normpath(os.path.join(self.socket_dir, socket))


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"token_file: cannot read {path}: {exc.strerror}") from None
    if not token:
        raise ValueError(f"token_file: {path} is empty")
    return token


def load_settings(**flags: Any) -> Settings:
    """Settings from flags (None means "not given"), environment, config file, defaults."""
    return Settings(**{key: value for key, value in flags.items() if value is not None})
