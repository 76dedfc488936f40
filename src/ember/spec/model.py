"""The build spec's shape: pydantic models of `ember.toml`.

Every model forbids unknown keys, so a typo is an error that names the
closest valid key (see `ember.spec.load`). The models hold data only; the
decisions made from them live in `ember.plan`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

# A Docker repository path component: lowercase letters and digits, separated by
# single '.', '_' or '-'. No '/', no '..', nothing a path or shell could misread.
NAME_PATTERN = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$"
# Release-like versions: 1, 1.2, 1.2.3, 2.0.1-rc1, 11.4.4+build.
VERSION_PATTERN = r"^[0-9]+(?:\.[0-9]+){0,3}(?:[-+][0-9A-Za-z.-]+)?$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
DURATION_PATTERN = r"^[0-9]+(?:ms|s|m|h)$"
IMAGE_PATTERN = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, min_length=1, max_length=64)]
Version = Annotated[str, StringConstraints(pattern=VERSION_PATTERN, max_length=64)]
Sha256 = Annotated[str, StringConstraints(pattern=SHA256_PATTERN)]
Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN)]
ImageRef = Annotated[str, StringConstraints(pattern=IMAGE_PATTERN, max_length=255)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)]
AbsPath = Annotated[str, StringConstraints(pattern=r"^/[^\x00\n]*$", max_length=4096)]
Url = Annotated[str, StringConstraints(pattern=r"^(?:https?|ftp)://[^\s]+$", max_length=2048)]
Port = Annotated[int, Field(ge=1, le=65535)]


class Section(BaseModel):
    """Base of every spec section: unknown keys are errors; values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Project(Section):
    """`[project]`: what is being built."""

    name: Name = Field(description="Image name component; the builder is NAME-builder.")
    version: Version | Literal[""] = Field(
        "", description="Version baked into the shipped binary (e.g. 2.0.1)."
    )
    require_version: bool = Field(
        False,
        description="Refuse to build with an unset or 0.0.0 version (Ollama's registry "
        "answers 412 on pulls from a 0.0.0 server).",
    )
    version_arg: EnvName = Field(
        "VERSION", description="Build argument that carries the version into the compile stage."
    )
    description: str = ""

    @property
    def version_missing(self) -> bool:
        """A required version that is unset or 0.0.0 (the model registry answers 412)."""
        return self.require_version and self.version in ("", "0.0.0")


class Source(Section):
    """`[source]`: a git repository at a ref, or a local tree. Exactly one of `git` and `path`."""

    git: (
        Annotated[
            str,
            StringConstraints(pattern=r"^(?:(?:https?|git|ssh|file)://\S+|[\w.-]+@[\w.-]+:\S+)$"),
        ]
        | None
    ) = Field(None, description="Git URL cloned in the compile stage.")
    ref: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._/@+-]{1,200}$")] = Field(
        "main", description="Branch, tag or commit; resolved to a commit at build time."
    )
    path: str | None = Field(
        None,
        description="Local source tree (relative to the spec file; `ember:examples/NAME` "
        "is a project bundled with ember).",
    )

    @field_validator("git")
    @classmethod
    def _no_credentials(cls, value: str | None) -> str | None:
        if value and re.match(r"^[a-z]+://[^/@]+@", value):
            raise ValueError(
                "a git URL must not carry credentials (they would land in image labels and "
                "logs): use a git credential helper or an SSH key"
            )
        return value

    @field_validator("ref")
    @classmethod
    def _safe_ref(cls, value: str) -> str:
        if value.startswith("-") or ".." in value:
            raise ValueError("a git ref may not start with '-' or contain '..'")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Source:
        if (self.git is None) == (self.path is None):
            raise ValueError(
                "give exactly one of `git` (a repository URL) or `path` (a local tree)"
            )
        return self


class Target(Section):
    """`[target]`: the GPUs the build must run on."""

    gpus: list[Annotated[str, StringConstraints(min_length=1, max_length=80)]] = Field(
        default_factory=list,
        description='GPU names ("Tesla K80") or compute capabilities ("3.7"); empty = CPU only.',
    )
    driver: Annotated[str, StringConstraints(pattern=r"^[0-9]{3}(?:\.[0-9]{1,3}){1,2}$")] | None = (
        Field(None, description="Host NVIDIA driver version, e.g. 470.256.02.")
    )
    arch_mode: Literal["real", "virtual", "both"] = Field(
        "real", description="real = native cubins only; virtual = PTX only (JIT at start); both."
    )
    cuda_architectures: (
        Annotated[
            str,
            StringConstraints(
                pattern=r"^[0-9]{2,3}[a-f]?(?:-real|-virtual)?(?:;[0-9]{2,3}[a-f]?(?:-real|-virtual)?)*$"
            ),
        ]
        | None
    ) = Field(
        None,
        description="Explicit CMAKE_CUDA_ARCHITECTURES (e.g. a preset's list); default: "
        "derived from `gpus` and `arch_mode`.",
    )


class Tool(Section):
    """One toolchain component and the recipe that obtains it.

    recipe = "package": distribution packages (`packages`, optional `repo`, `release`);
    "archive": a prebuilt archive (`url` + `sha256`) unpacked into `prefix`;
    "source": a source tarball (`url` + `sha256`) configured, built and installed into `prefix`;
    "pip": Python wheels (`packages`, optional `sha256` of the wheel) in a private venv;
    "none": not installed.
    """

    version: Version = Field(description="The version this recipe provides.")
    recipe: Literal["package", "archive", "source", "pip", "none"]
    packages: list[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.+_=:~-]*$")]
    ] = Field(default_factory=list)
    repo: str | None = Field(
        None, description="Package repository to add (an rpm .repo URL or a deb line)."
    )
    release: Annotated[str, StringConstraints(pattern=r"^[a-z0-9.-]+$")] | None = Field(
        None, description="Debian release to install from (e.g. bookworm-backports)."
    )
    url: Url | None = None
    sha256: Sha256 | None = None
    prefix: AbsPath = "/usr/local"
    configure_args: list[str] = Field(default_factory=list)
    bin_dir: AbsPath | None = Field(None, description="Folder added to PATH in the builder.")
    lib_dir: AbsPath | None = Field(None, description="Folder registered with the dynamic loader.")

    @model_validator(mode="after")
    def _recipe_fields(self) -> Tool:
        if self.recipe in ("archive", "source"):
            if not self.url or not self.sha256:
                raise ValueError(
                    f"recipe {self.recipe!r} needs `url` and `sha256` (downloads are checked)"
                )
        if self.recipe in ("package", "pip") and not self.packages:
            raise ValueError(f"recipe {self.recipe!r} needs `packages`")
        if self.recipe == "pip" and (not self.sha256 or len(self.packages) != 1):
            raise ValueError(
                'recipe "pip" takes one pinned package (e.g. "cmake==4.0.3") and the `sha256` '
                "of its wheel (downloads are checked)"
            )
        return self


class Bootstrap(Section):
    """`[toolchain.bootstrap]`: the base may be made offline with debootstrap."""

    suite: Annotated[str, StringConstraints(pattern=r"^[a-z]+$")] = "bookworm"
    mirror: Url = "http://deb.debian.org/debian"


class Toolchain(Section):
    """`[toolchain]`: the builder image: base, distribution family and the tools."""

    base: ImageRef = Field(description="Base image of the builder.")
    family: Literal["rhel", "debian"] = Field(description="Package manager family of the base.")
    bootstrap: Bootstrap | None = None
    packages: list[
        Annotated[str, StringConstraints(pattern=r"^@?[A-Za-z0-9][A-Za-z0-9.+_=:~ -]*$")]
    ] = Field(default_factory=list, description="Extra distribution packages (git, make, ...).")
    cuda: Tool | None = None
    gcc: Tool
    cmake: Tool | None = None
    go: Tool | None = None
    env: dict[EnvName, str] = Field(default_factory=dict)


class CMakeBuild(Section):
    """`[build.cmake]`: configure (a preset or args), build, install components."""

    preset: str | None = None
    args: list[str] = Field(default_factory=list)
    build_dir: str = "build"
    components: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$")]] = Field(
        default_factory=list
    )
    strip: bool = True
    prefix: str | None = Field(
        None, description="Install prefix; default: the preset's installDir."
    )


class GoBuild(Section):
    """`[build.go]`: the Go binary, with the version linked in."""

    package: str = "."
    output: str = Field(description="Output path, relative to the source tree.")
    ldflags: str = Field("", description="May use {version}.")
    env: dict[EnvName, str] = Field(default_factory=dict)


class Build(Section):
    """`[build]`: the compile stage."""

    workdir: AbsPath = "/src"
    jobs: int = Field(0, ge=0, le=1024, description="Parallel jobs; 0 = all cores.")
    env: dict[EnvName, str] = Field(default_factory=dict)
    cmake: CMakeBuild | None = None
    go: GoBuild | None = None
    steps: list[str] = Field(default_factory=list, description="Extra shell steps, run last.")
    artifacts: dict[str, AbsPath] = Field(
        min_length=1, description="Path in the build (relative to workdir) -> path in the image."
    )
    ca_bundle: str | None = Field(
        None,
        description='CA bundle for networks that re-sign HTTPS: "host" or a path. Passed as a '
        "BuildKit secret, never stored in an image.",
    )

    @field_validator("artifacts")
    @classmethod
    def _relative_sources(cls, value: dict[str, str]) -> dict[str, str]:
        for src in value:
            if src.startswith("/") or ".." in src.split("/") or not src:
                raise ValueError(
                    f"artifact source {src!r} must be a relative path inside the build"
                )
        return value


class Healthcheck(Section):
    """`[runtime.healthcheck]`: exec-form command and timings."""

    test: list[str] = Field(min_length=1)
    interval: Duration = "30s"
    timeout: Duration = "10s"
    retries: int = Field(3, ge=1, le=100)
    start_period: Duration = "5s"


class Runtime(Section):
    """`[runtime]`: the run stage."""

    base: Literal["builder"] | ImageRef = Field(
        "builder", description='"builder" (the seed\'s design: FROM the builder) or an image.'
    )
    env: dict[EnvName, str] = Field(default_factory=dict)
    ports: list[Port] = Field(default_factory=list)
    volumes: list[AbsPath] = Field(default_factory=list)
    entrypoint: list[str] = Field(default_factory=list)
    cmd: list[str] = Field(default_factory=list)
    healthcheck: Healthcheck | None = None
    user: (
        Annotated[
            str,
            StringConstraints(
                pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?$"
            ),
        ]
        | None
    ) = None
    labels: dict[Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$")], str] = Field(
        default_factory=dict
    )


class Compose(Section):
    """`[compose]`: how `ember up` runs the runtime image."""

    service: Name | None = Field(None, description="Service name; default: the project name.")
    gpu: bool = Field(True, description="Reserve NVIDIA GPUs (off: CPU only, like --no-gpu).")
    gpus: Literal["all"] | list[Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z-]+$")]] = (
        Field("all", description='"all" or a list of device ids / UUIDs.')
    )
    runtime: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]*$")] = Field(
        "nvidia", description='Container runtime used with the GPU reservation ("" for none).'
    )
    restart: Literal["no", "always", "on-failure", "unless-stopped"] = "unless-stopped"
    devices: list[AbsPath] = Field(
        default_factory=list, description="Extra devices mapped in (e.g. /dev/nvidia-uvm)."
    )
    publish_address: str = Field(
        "127.0.0.1",
        description="Address the ports are published on. The Ollama API has no "
        "authentication: 0.0.0.0 must be an explicit choice.",
    )
    volume: Name | None = Field(None, description="Named volume for the first runtime volume.")
    environment: dict[EnvName, str] = Field(
        default_factory=dict, description="Run-time settings; ${VAR:-default} reads .env."
    )

    @field_validator("publish_address")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("must be an IP address such as 127.0.0.1 or 0.0.0.0") from None
        return value


class EngineSettings(Section):
    """`[engine]`: how builds reach the container engine."""

    builder: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$")] | None = Field(
        None, description="buildx builder instance to use (default: the current one)."
    )
    network: Literal["host", "default", "none"] = Field("host", description="Network of RUN steps.")
    platform: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+/[a-z0-9]+(?:/[a-z0-9]+)?$")] = (
        "linux/amd64"
    )


class Spec(Section):
    """A whole `ember.toml`."""

    project: Project
    source: Source
    target: Target = Field(default_factory=Target)
    toolchain: Toolchain
    build: Build
    runtime: Runtime = Field(default_factory=Runtime)
    compose: Compose = Field(default_factory=Compose)
    engine: EngineSettings = Field(default_factory=EngineSettings)

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        if self.target.gpus and self.toolchain.cuda is None:
            raise ValueError(
                "`target.gpus` is set but `toolchain.cuda` is missing: add a CUDA recipe or empty the GPU list"
            )
        if self.build.go is not None and self.toolchain.go is None:
            raise ValueError("`build.go` needs `toolchain.go`")
        if self.build.cmake is not None and self.toolchain.cmake is None:
            raise ValueError("`build.cmake` needs `toolchain.cmake`")
        return self

    @property
    def builder_name(self) -> str:
        return f"{self.project.name}-builder"

    @property
    def builder_image(self) -> str:
        """The builder's image reference."""
        return f"{self.builder_name}:latest"

    @property
    def runtime_image(self) -> str:
        """The runtime's image reference."""
        return f"{self.project.name}:latest"

    @property
    def service_name(self) -> str:
        return self.compose.service or self.project.name
