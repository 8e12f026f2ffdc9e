"""memifd settings: command-line flags, ``MEMIFD_*`` environment variables, a YAML file.

Precedence, highest first: flags (keyword arguments), environment, the config
file, defaults. The config file may also declare ``interfaces:``, a list of
interface specs that memifd creates when it starts.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from memif.sockfile import StalePolicy
from pydantic import ByteSize, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from memifd.core.errors import InvalidArgumentError
from memifd.core.limits import GRPC_MAX_BATCH_BYTES, HTTP_MAX_PCAP_BYTES
from memifd.core.models import IdList, InterfaceSpec
from memifd.core.socketdirs import confine

ENV_PREFIX = "MEMIFD_"
LogFormat = Literal["auto", "json", "text"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


def default_socket_dir() -> Path:
    """``/run/memifd`` if usable, else ``$XDG_RUNTIME_DIR/memifd``, else the fallback."""
    candidates = [Path("/run/memifd")]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        candidates.append(Path(runtime) / "memifd")
    for path in candidates:
        if _writable_or_creatable(path):
            return path
    return fallback_socket_dir()


def fallback_socket_dir() -> Path:
    """``/tmp/memifd-<uid>`` (``$TMPDIR`` if set): used only if it is memifd's alone."""
    return Path(tempfile.gettempdir()) / f"memifd-{os.geteuid()}"


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
        data = load_yaml(self.path)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ValueError(f"config: {self.path} must hold a mapping, not {type(data).__name__}")
        return {str(key).replace("-", "_"): value for key, value in data.items()}


MAX_CONFIG_BYTES = 1 << 20  # a config file larger than this is refused unread
MAX_CONFIG_DEPTH = 32  # nesting of mappings and lists; the schema needs 4
MAX_CONFIG_NODES = 200_000  # scalars, lists and mappings, aliases counted where used


def load_yaml(path: Path) -> Any:
    """The YAML document in ``path``, refused with one line (ValueError) when it cannot be
    read, is not YAML, or is larger, deeper or more repetitive (aliases) than a config."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"config: cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ValueError(f"config: {path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        node = yaml.compose(raw, Loader=yaml.SafeLoader)
        if node is None:
            return None
        _check_shape(node, path)
        return yaml.SafeLoader(raw).construct_document(node)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or type(exc).__name__
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise ValueError(f"config: {path} is not valid YAML: {problem}{at}") from None
    except RecursionError:
        raise ValueError(f"config: {path} nests deeper than {MAX_CONFIG_DEPTH} levels") from None


def _check_shape(root: yaml.Node, path: Path) -> None:
    """Refuse documents nested deeper than MAX_CONFIG_DEPTH or with more than
    MAX_CONFIG_NODES nodes once aliases are expanded (a "billion laughs")."""
    count = 0
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_CONFIG_NODES:
            raise ValueError(
                f"config: {path} holds more than {MAX_CONFIG_NODES} values (aliases expanded)"
            )
        if depth > MAX_CONFIG_DEPTH:
            raise ValueError(f"config: {path} nests deeper than {MAX_CONFIG_DEPTH} levels")
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend(((key, depth + 1), (value, depth + 1)))


class Settings(BaseSettings):
    """Everything ``memifd serve`` needs; see the module docstring for precedence."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

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
    # -- watchdog and timeouts ---------------------------------------------------------------
    worker_stall_unready: float = Field(
        default=5.0,
        ge=1,
        le=3600,
        description="Seconds the worker's loop may go without turning before /readyz, gRPC "
        "health and memifd_ready say not ready.",
    )
    worker_stall_unhealthy: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="Seconds the worker's loop may go without turning before /healthz fails "
        "(Kubernetes then restarts memifd).",
    )
    command_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds an API call waits for the worker; a change it has not started "
        "by then is cancelled.",
    )
    shutdown_timeout: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Seconds SIGTERM may take; then memifd removes its socket files and exits.",
    )
    # -- resource limits ---------------------------------------------------------------------
    max_interfaces: int = Field(
        default=1024, ge=1, le=1_000_000, description="Interfaces memifd manages at most."
    )
    max_shared_memory: ByteSize = Field(
        default=ByteSize(1 << 30),
        description="Shared memory (rings and packet buffers) of all interfaces together, "
        "as each interface's memory settings size it; bytes or a size such as 4GiB.",
    )
    stream_buffer: ByteSize = Field(
        default=ByteSize(16 << 20),
        ge=1 << 16,
        description="Packet bytes one capture or exchange stream holds for a slow reader.",
    )
    stream_memory: ByteSize = Field(
        default=ByteSize(256 << 20),
        ge=1 << 16,
        description="Packet bytes all capture and exchange streams hold together.",
    )
    grpc_batch_memory: ByteSize = Field(
        default=ByteSize(32 << 20),
        ge=GRPC_MAX_BATCH_BYTES,
        description="Bytes of packet batches (gRPC Inject and Exchange) all calls hold "
        "together; a batch that finds no room within a second is refused.",
    )
    http_max_connections: int = Field(
        default=1024,
        ge=1,
        le=1_000_000,
        description="Open HTTP connections at most; more are answered 503 and closed.",
    )
    http_body_memory: ByteSize = Field(
        default=ByteSize(128 << 20),
        ge=HTTP_MAX_PCAP_BYTES,
        description="Bytes of request bodies (pcap uploads, specs) all HTTP requests hold "
        "together, at least one pcap file of the largest size (64MiB); a body that does not "
        "fit is answered 503 with Retry-After.",
    )
    http_header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds a connection gets to send a request's headers.",
    )
    http_body_timeout: float = Field(
        default=60.0, gt=0, le=86_400, description="Seconds a request gets to send its body."
    )
    http_idle_timeout: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Seconds an idle keep-alive connection stays open.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names the REST API answers to besides localhost and IP "
        "addresses (comma-separated in the environment); '*.example.org' a domain, '*' any.",
    )
    interfaces: list[InterfaceSpec] = Field(
        default_factory=list, description="Interfaces created at start."
    )
    socket_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="More absolute directories control sockets may be in besides socket_dir "
        "(e.g. /run/vpp); a comma-separated list or JSON array in the environment.",
    )
    replace_stale_sockets: StalePolicy = Field(
        default="own",
        description="Stale socket files (nothing accepts on them) a server replaces: own "
        "(left by memifd's uid), any, or never.",
    )
    default_allowed_uids: Annotated[IdList, NoDecode] = Field(
        default_factory=list,
        description="Peer uids server interfaces accept besides memifd's own, unless the "
        "spec sets allowed_uids or allowed_gids.",
    )
    default_allowed_gids: Annotated[IdList, NoDecode] = Field(
        default_factory=list,
        description="Peer groups (primary or supplementary) server interfaces accept, unless "
        "the spec sets allowed_uids or allowed_gids.",
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
        return (
            init_settings,
            env_settings,
            _YamlFileSource(settings_cls, Path(path) if path is not None else None),
        )

    @field_validator("token_file", "config", "tls_cert", "tls_key", "token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # MEMIFD_TOKEN_FILE= (empty) switches a file off instead of naming the cwd.
        return None if value == "" else value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            name = host.removeprefix("*.")
            if host != "*" and (not name or not all(c.isalnum() or c in ".-_" for c in name)):
                raise ValueError(f"{host!r} is not a host name, '*.domain' or '*'")
        return [host.lower() for host in value]

    @field_validator("socket_dirs", "default_allowed_uids", "default_allowed_gids", mode="before")
    @classmethod
    def _list_from_text(cls, value: object) -> object:
        # MEMIFD_SOCKET_DIRS=/run/vpp,/run/other or a JSON array
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            return json.loads(value)
        return [item.strip() for item in value.split(",") if item.strip()]

    @field_validator("socket_dir", "socket_dirs")
    @classmethod
    def _absolute(cls, value: Path | list[Path]) -> Path | list[Path]:
        if isinstance(value, Path):
            return Path(os.path.abspath(value))
        for path in value:
            if not path.is_absolute():
                raise ValueError(f"{path} is not an absolute path")
        return [Path(os.path.normpath(path)) for path in value]

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
        for spec in self.interfaces:
            try:
                self.resolve_socket(spec.socket)
            except InvalidArgumentError as exc:
                raise ValueError(f"interfaces: {spec.name}: socket: {exc.message}") from None
        _check_places(self)
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

    @property
    def allowed_socket_dirs(self) -> list[str]:
        """socket_dir and socket_dirs: the directories control sockets may be below."""
        paths = [str(self.socket_dir), *map(str, self.socket_dirs)]
        return list(dict.fromkeys(paths))

    def resolve_socket(self, socket: str) -> str:
        """A spec's ``socket``: ``@name`` as is, relative names under :attr:`socket_dir`,
        absolute paths as they are; raises :class:`InvalidArgumentError` unless the
        path lies below one of :attr:`allowed_socket_dirs`."""
        return confine(socket, self.socket_dir, self.allowed_socket_dirs)


def _check_places(settings: Settings) -> None:
    """Refuse two declared interfaces with one socket, role and id, naming both."""
    places: dict[tuple[str, str, int], str] = {}
    for index, spec in enumerate(settings.interfaces):
        path = settings.resolve_socket(spec.socket)
        place = (path if path.startswith("@") else os.path.normpath(path), spec.role.value, spec.id)
        where = f"interfaces[{index}] ({spec.name})"
        if place in places:
            raise ValueError(
                f"{places[place]} and {where} both use socket {place[0]}, role {place[1]} and "
                f"id {place[2]}; give one of them another socket or id"
            )
        places[place] = where


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
