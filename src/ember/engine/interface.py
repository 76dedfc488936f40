"""What ember asks of a container engine, and the values it gets back.

`Engine` is a Protocol: the Docker implementation (`ember.engine.docker`) is
one engine; another (Podman, a remote builder) plugs in by providing these
methods. Values are frozen dataclasses, so they can be compared in tests and
passed around freely.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Protocol, runtime_checkable

from ember.errors import EngineError
from ember.events import EventSink
from ember.proc import Completed

_SECRET_ID = re.compile(r"^[A-Za-z0-9_.-]+$")

ComposeVerb = Literal["up", "down", "logs", "ps", "restart", "stop", "start", "config", "pull"]
BuildBackend = Literal["auto", "buildx", "buildkit", "classic"]


class ImageNotFound(EngineError):
    """The engine has no image under this reference."""


def _frozen(mapping: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class BuildRequest:
    """One image build.

    `secrets` maps a BuildKit secret id to a file on this machine; a RUN step
    reads it with `--mount=type=secret,id=ID` at /run/secrets/ID. Secrets are
    never build args and never written to logs (only their paths travel).
    `network` defaults to "host": some networks (this one) cannot resolve names
    on the default bridge. `log_path`, when set, receives the builder's raw output.
    `name` is what events and messages call the build (default: the first tag).
    """

    context_dir: Path
    dockerfile: Path | None = None  # default: context_dir / "Dockerfile"
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, Path] = field(default_factory=dict)
    network: str | None = "host"
    target: str | None = None
    no_cache: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    builder: str | None = None  # a buildx builder instance; None: the engine's default
    platform: str | None = None
    log_path: Path | None = None
    name: str | None = None  # what events and messages call it (default: the first tag)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "context_dir", Path(self.context_dir))
        if self.dockerfile is not None:
            set_(self, "dockerfile", Path(self.dockerfile))
        if isinstance(self.tags, str):
            set_(self, "tags", (self.tags,))
        else:
            set_(self, "tags", tuple(self.tags))
        set_(self, "build_args", _frozen(self.build_args))
        set_(self, "labels", _frozen(self.labels))
        secrets = {k: Path(v) for k, v in dict(self.secrets or {}).items()}
        for key in secrets:
            if not _SECRET_ID.match(key):
                raise ValueError(f"secret id {key!r} must match {_SECRET_ID.pattern}")
        set_(self, "secrets", MappingProxyType(secrets))
        if self.log_path is not None:
            set_(self, "log_path", Path(self.log_path))

    @property
    def dockerfile_path(self) -> Path:
        return self.dockerfile if self.dockerfile is not None else self.context_dir / "Dockerfile"


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    tags: tuple[str, ...]
    seconds: float
    steps: int = 0
    cached: int = 0
    backend: str = ""


@dataclass(frozen=True)
class ImageInfo:
    id: str
    tags: tuple[str, ...]
    size: int  # bytes
    labels: Mapping[str, str]
    created: datetime | None
    architecture: str = ""
    os: str = ""


@dataclass(frozen=True)
class EngineInfo:
    """What the engine and the client in front of it can do."""

    endpoint: str
    client_version: str
    server_version: str
    api_version: str = ""
    os: str = ""
    architecture: str = ""
    storage_driver: str = ""
    cpus: int = 0
    memory_bytes: int = 0
    runtimes: tuple[str, ...] = ()
    default_runtime: str = ""
    buildx_version: str | None = None
    rawjson_progress: bool = False
    compose_version: str | None = None
    compose_v1: bool = False

    @property
    def has_buildx(self) -> bool:
        return self.buildx_version is not None

    @property
    def has_compose(self) -> bool:
        return self.compose_version is not None

    def has_runtime(self, name: str) -> bool:
        return name in self.runtimes


@dataclass(frozen=True)
class ServiceState:
    """One container of a compose project, as `ps` sees it."""

    container_id: str
    name: str
    service: str
    state: str  # running, exited, ...
    health: str | None  # healthy, unhealthy, starting, or None without a healthcheck
    exit_code: int = 0


@dataclass(frozen=True)
class ComposeResult:
    verb: str
    argv: tuple[str, ...]
    output: str
    services: tuple[ServiceState, ...] = ()


@runtime_checkable
class Engine(Protocol):
    """A container engine, as ember uses it."""

    def info(self) -> EngineInfo: ...

    def image_exists(self, ref: str) -> bool: ...

    def inspect_image(self, ref: str) -> ImageInfo: ...

    def build(self, request: BuildRequest, on_event: EventSink | None = None) -> BuildResult: ...

    def tag(self, src: str, dst: str) -> None: ...

    def remove_image(self, ref: str, *, force: bool = False, missing_ok: bool = True) -> bool: ...

    def list_images(
        self, reference: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[ImageInfo]: ...

    def push(self, ref: str) -> None: ...

    def pull(self, ref: str) -> None: ...

    def import_rootfs(
        self, tarball: Path, ref: str, changes: Sequence[str] = (), message: str | None = None
    ) -> ImageInfo: ...

    def export_filesystem(self, ref: str, dest_dir: Path) -> Path: ...

    def copy_from_image(self, ref: str, path: str, dest: Path) -> Path: ...

    def run(
        self,
        image: str,
        command: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        network: str | None = "host",
        volumes: Sequence[tuple[Path, str]] = (),
        entrypoint: str | None = None,
        user: str | None = None,
        workdir: str | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> Completed: ...

    def compose(
        self,
        project_dir: Path,
        compose_file: Path,
        project_name: str,
        verb: ComposeVerb,
        args: Sequence[str] = (),
        *,
        timeout: float | None = None,
        on_event: EventSink | None = None,
    ) -> ComposeResult: ...
