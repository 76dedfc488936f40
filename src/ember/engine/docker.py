"""The Docker engine: the docker CLI (and its buildx / compose plugins) driven as argv lists.

python-on-whales supplies the client configuration (`ClientConfig`: --host,
--context, --config and TLS flags, which binary) and the typed models that
parse the engine's JSON (`SystemInfo`, `ImageInspectResult`,
`ContainerInspectResult`). Every command runs through `ember.proc`, the one
place that runs programs: so every command has a timeout, is recorded as a
`CommandStarted` event (replayable in a log folder), and is stopped before a
Ctrl-C propagates (python-on-whales' own streaming builds leave the child
running, which would let an interrupted build tag its image afterwards).

Which build path is used (`backend="auto"`):

1. `docker buildx build --load` when the buildx plugin is there, with
   `--progress=rawjson` (buildx >= 0.12; parsed as BuildKit's own status
   objects) else `--progress=plain`;
2. `DOCKER_BUILDKIT=1 docker build --progress=plain` with a client that has
   BuildKit built in (before Docker 23);
3. the classic builder (`DOCKER_BUILDKIT=0`), with a warning event; it cannot
   take secrets or cache mounts.

`DOCKER_HOST`, `DOCKER_CONTEXT` and `BUILDX_BUILDER` are honoured as the
docker CLI honours them; `host=`, `context=` and `builder=` override them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from ember import proc
from ember.engine.interface import (
    BuildBackend,
    BuildRequest,
    BuildResult,
    ComposeResult,
    ComposeVerb,
    EngineInfo,
    ImageInfo,
    ImageNotFound,
    ServiceState,
)
from ember.engine.progress import ClassicProgress, PlainProgress, RawJsonProgress
from ember.errors import BuildFailed, EngineError, EngineMissing
from ember.events import (
    BuildFinished,
    BuildStarted,
    CommandStarted,
    EventSink,
    Warn,
    null_sink,
)

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
QUICK_TIMEOUT = 120.0  # inspect, tag, rm, info...: a daemon that takes longer is stuck
HEALTH_TIMEOUT = 180.0
START_HINT = "start it: sudo scripts/setup-engine, or set DOCKER_HOST"
INSTALL_HINT = "install it: sudo scripts/setup-engine (Debian: apt-get install docker.io)"

# What a failed build's log says -> what to do about it. Knowledge is data.
_MOUNT_FLAG = re.compile(r"^\s*RUN\s+--mount=", re.MULTILINE)
FAILURE_HINTS: tuple[tuple[str, str], ...] = (
    (
        "registry-1.docker.io",
        "this engine cannot pull from Docker Hub: build FROM images in the local store "
        "(`ember base bootstrap`, or `docker load` of an image saved elsewhere), and keep "
        "`# syntax=` lines out of Dockerfiles",
    ),
    (
        "pull access denied",
        "the base image is not on this engine and cannot be pulled: build or import it first",
    ),
    (
        "CERTIFICATE_VERIFY_FAILED",
        "HTTPS is re-signed on this network: pass the CA bundle as build secret `cacert` and "
        "point the tool at /run/secrets/cacert in that RUN step",
    ),
    (
        "certificate verify failed",
        "HTTPS is re-signed on this network: pass the CA bundle as build secret `cacert` and "
        "point the tool at /run/secrets/cacert in that RUN step",
    ),
    (
        "Temporary failure resolving",
        "names do not resolve inside the build: build with network `host`",
    ),
    ("Could not resolve host", "names do not resolve inside the build: build with network `host`"),
    ("no space left on device", "the engine's disk is full: `docker system prune` frees cache"),
)

_UNREACHABLE = re.compile(
    r"Cannot connect to the Docker daemon at (?P<at>\S+?)\.? Is the docker daemon running"
    r"|error during connect"
    r"|dial unix (?P<sock>\S+?): connect"
    r"|failed to connect to the docker API"
)
_NO_SUCH_IMAGE = re.compile(
    r"No such image|No such object|image .* not found|not found: manifest", re.I
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PASSED_ENV = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "BUILDX_BUILDER")


@dataclass(frozen=True)
class _Capabilities:
    client_version: str
    buildx_version: str | None
    rawjson: bool
    compose_version: str | None
    compose_v1: bool


class DockerEngine:
    """ember's `Engine` over the docker CLI."""

    def __init__(
        self,
        *,
        host: str | None = None,
        context: str | None = None,
        config: str | os.PathLike[str] | None = None,
        builder: str | None = None,
        client: Sequence[str] = ("docker",),
        compose_v1: Sequence[str] = ("docker-compose",),
        backend: BuildBackend = "auto",
        observer: EventSink | None = None,
    ) -> None:
        self.host = host
        self.context = context
        self.config = config
        self.builder = builder
        self.client = tuple(client)
        self.compose_v1_call = tuple(compose_v1)
        self.backend = backend
        self._observers: list[EventSink] = [observer] if observer is not None else []
        self._caps: _Capabilities | None = None
        self._prefix: tuple[str, ...] | None = None

    @classmethod
    def from_env(cls, **overrides: Any) -> DockerEngine:
        """The engine the environment names: `EMBER_DOCKER` (client), `EMBER_BUILDER`."""
        kwargs: dict[str, Any] = {}
        if os.environ.get("EMBER_DOCKER"):
            kwargs["client"] = (os.environ["EMBER_DOCKER"],)
        if os.environ.get("EMBER_BUILDER"):
            kwargs["builder"] = os.environ["EMBER_BUILDER"]
        kwargs.update(overrides)
        return cls(**kwargs)

    # ------------------------------------------------------------ plumbing

    @property
    def endpoint(self) -> str:
        """Where this engine is, in words, for messages."""
        if self.host:
            return self.host
        context = self.context or os.environ.get("DOCKER_CONTEXT")
        if context and context != "default":
            return f"docker context `{context}`"
        return os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET

    def docker_cmd(self) -> list[str]:
        """The docker client and its global flags, as python-on-whales computes them."""
        if self._prefix is None:
            from python_on_whales.client_config import ClientConfig, ClientNotFoundError

            cfg = ClientConfig(
                host=self.host,
                context=self.context,
                config=None if self.config is None else Path(self.config),
                client_call=list(self.client),
            )
            try:
                self._prefix = tuple(str(a) for a in cfg.docker_cmd)
            except ClientNotFoundError:
                raise EngineMissing(
                    f"no `{self.client[0]}` client found on PATH",
                    command=list(self.client),
                    hint=INSTALL_HINT,
                ) from None
        return list(self._prefix)

    @contextlib.contextmanager
    def observed(self, sink: EventSink) -> Iterator[None]:
        """Within the block, every command this engine runs is announced to `sink`."""
        self._observers.append(sink)
        try:
            yield
        finally:
            self._observers.remove(sink)

    def _announce(
        self,
        argv: Sequence[str],
        env: Mapping[str, str | None] | None = None,
        cwd: str | None = None,
        extra: EventSink | None = None,
    ) -> None:
        shown = {k: os.environ[k] for k in _PASSED_ENV if os.environ.get(k)}
        shown.update({k: v for k, v in (env or {}).items() if v is not None})
        event = CommandStarted(tuple(argv), cwd, tuple(sorted(shown.items())))
        sinks = list(self._observers)
        if extra is not None and all(extra is not s for s in sinks):
            sinks.append(extra)
        for sink in sinks:
            sink(event)

    def _docker(
        self,
        *args: str | os.PathLike[str],
        check: bool = True,
        timeout: float | None = QUICK_TIMEOUT,
        env: Mapping[str, str | None] | None = None,
        input: str | bytes | None = None,
        on_event: EventSink | None = None,
        announce: bool = True,
    ) -> proc.Completed:
        argv = [*self.docker_cmd(), *(os.fspath(a) for a in args)]
        if announce:
            self._announce(argv, env, extra=on_event)
        try:
            result = proc.run(argv, env=env, timeout=timeout, input=input, check=False)
        except proc.CommandError as exc:
            raise self._error(exc) from exc
        if check and not result.ok:
            raise self._failed(result)
        return result

    def _error(self, exc: proc.CommandError) -> EngineError:
        if isinstance(exc, proc.CommandNotFound):
            return EngineMissing(exc.message, command=exc.argv, hint=INSTALL_HINT)
        return EngineError(
            exc.message, command=exc.argv, returncode=exc.returncode, log_tail=exc.tail()
        )

    def _unreachable(
        self, text: str, argv: Sequence[str], returncode: int | None
    ) -> EngineMissing | None:
        m = _UNREACHABLE.search(text)
        if m is None:
            return None
        at = m.group("at") or (f"unix://{m.group('sock')}" if m.group("sock") else self.endpoint)
        hint = START_HINT
        if "permission denied" in text:
            hint = "add yourself to the `docker` group (then log in again), or run with sudo"
        return EngineMissing(
            f"cannot reach the Docker engine at {at}",
            command=argv,
            returncode=returncode,
            log_tail=proc.tail_of(text, 10),
            hint=hint,
        )

    def _failed(self, result: proc.Completed, what: str | None = None) -> EngineError:
        text = result.stderr + result.stdout
        missing = self._unreachable(text, result.argv, result.returncode)
        if missing is not None:
            return missing
        verb = what or self._verb(result.argv)
        last = proc.last_line(result.stderr) or proc.last_line(result.stdout) or "no output"
        cls = ImageNotFound if _NO_SUCH_IMAGE.search(result.stderr) else EngineError
        return cls(
            f"`{verb}` failed (exit {result.returncode}): {last}",
            command=result.argv,
            returncode=result.returncode,
            log_tail=result.tail(),
        )

    def _verb(self, argv: Sequence[str]) -> str:
        prefix = len(self.docker_cmd())
        words = [a for a in argv[prefix:] if not a.startswith("-")][:2]
        return " ".join(["docker", *words])

    # ------------------------------------------------------------ what the engine can do

    def _capabilities(self) -> _Capabilities:
        if self._caps is not None:
            return self._caps
        client = self._docker(
            "version", "--format", "{{.Client.Version}}", check=False, announce=False
        ).stdout.strip()
        client = client.splitlines()[0] if client else ""
        buildx: str | None = None
        rawjson = False
        bx = self._docker(
            "buildx",
            "version",
            check=False,
            env={"DOCKER_CLI_EXPERIMENTAL": "enabled"},
            announce=False,
        )
        if bx.ok and bx.stdout.strip():
            words = bx.stdout.split()
            buildx = (words[1] if len(words) > 1 else words[0]).lstrip("v")
            # `--help` does not list rawjson: ask buildx to parse it against a missing context.
            probe = self._docker(
                "buildx",
                "build",
                "--progress=rawjson",
                "/nonexistent-ember-probe",
                check=False,
                announce=False,
            )
            rawjson = "invalid progress mode" not in probe.stderr + probe.stdout
        compose: str | None = None
        compose_v1 = False
        cv = self._docker("compose", "version", "--short", check=False, announce=False)
        if cv.ok and cv.stdout.strip():
            compose = cv.stdout.strip().lstrip("v")
        elif proc.which(self.compose_v1_call[0]):
            v1 = proc.run([*self.compose_v1_call, "version", "--short"], check=False, timeout=30)
            if v1.ok and v1.stdout.strip():
                compose, compose_v1 = v1.stdout.strip(), True
        self._caps = _Capabilities(client, buildx, rawjson, compose, compose_v1)
        return self._caps

    def info(self) -> EngineInfo:
        """Server and client versions, plugins, runtimes. Raises EngineMissing when unreachable."""
        from python_on_whales.components.system.models import SystemInfo

        result = self._docker("info", "--format", "{{json .}}", check=False)
        missing = self._unreachable(result.stderr, result.argv, result.returncode)
        if missing is not None:
            raise missing
        if not result.ok:
            raise self._failed(result)
        raw = json.loads(result.stdout)
        server_errors = raw.get("ServerErrors") or []
        if server_errors or not raw.get("ServerVersion"):
            raise EngineMissing(
                f"cannot reach the Docker engine at {self.endpoint}",
                command=result.argv,
                log_tail="\n".join(server_errors),
                hint=START_HINT,
            )
        sysinfo = SystemInfo(**raw)
        version = self._docker("version", "--format", "{{.Server.APIVersion}}", check=False)
        caps = self._capabilities()
        return EngineInfo(
            endpoint=self.endpoint,
            client_version=caps.client_version,
            server_version=sysinfo.server_version or "",
            api_version=version.stdout.strip() if version.ok else "",
            os=sysinfo.operating_system or "",
            architecture=sysinfo.architecture or "",
            storage_driver=sysinfo.driver or "",
            cpus=int(sysinfo.n_cpu or 0),
            memory_bytes=int(sysinfo.mem_total or 0),
            runtimes=tuple(sorted(sysinfo.runtimes or {})),
            default_runtime=sysinfo.default_runtime or "",
            buildx_version=caps.buildx_version,
            rawjson_progress=caps.rawjson,
            compose_version=caps.compose_version,
            compose_v1=caps.compose_v1,
        )

    # ------------------------------------------------------------ images

    def image_exists(self, ref: str) -> bool:
        result = self._docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
        if result.ok:
            return True
        error = self._failed(result)
        if isinstance(error, ImageNotFound):
            return False
        raise error

    def inspect_image(self, ref: str) -> ImageInfo:
        infos = self._inspect_images([ref])
        return infos[0]

    def _inspect_images(self, refs: Sequence[str]) -> list[ImageInfo]:
        from python_on_whales.components.image.models import ImageInspectResult

        result = self._docker("image", "inspect", *refs, check=False)
        if not result.ok:
            error = self._failed(result)
            if isinstance(error, ImageNotFound):
                raise ImageNotFound(
                    f"no image `{refs[0]}` on the engine at {self.endpoint}"
                    if len(refs) == 1
                    else f"some of {', '.join(refs)} are not on the engine",
                    command=result.argv,
                    returncode=result.returncode,
                    hint="build it, import it (`ember base bootstrap`) or pull it",
                )
            raise error
        infos = []
        for obj in json.loads(result.stdout):
            model = ImageInspectResult(**obj)
            labels = (model.config.labels if model.config is not None else None) or {}
            created = model.created if isinstance(model.created, datetime) else None
            infos.append(
                ImageInfo(
                    id=model.id or "",
                    tags=tuple(model.repo_tags or ()),
                    size=int(model.size or 0),
                    labels=dict(labels),
                    created=created,
                    architecture=model.architecture or "",
                    os=model.os or "",
                )
            )
        return infos

    def tag(self, src: str, dst: str) -> None:
        self._docker("image", "tag", src, dst)

    def remove_image(self, ref: str, *, force: bool = False, missing_ok: bool = True) -> bool:
        """Untag (or delete) `ref`. Returns False when there was nothing to remove."""
        args = ["image", "rm", *(["--force"] if force else []), ref]
        result = self._docker(*args, check=False)
        if result.ok:
            return True
        error = self._failed(result)
        if isinstance(error, ImageNotFound) and missing_ok:
            return False
        raise error

    def list_images(
        self, reference: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[ImageInfo]:
        """Images matching a reference pattern (`ember/*:ember-tmp-*`) and/or labels.

        Each ImageInfo carries all of its tags, not only the matching ones.
        """
        args = ["image", "ls", "--no-trunc", "--quiet"]
        if reference:
            args += ["--filter", f"reference={reference}"]
        for key, value in (labels or {}).items():
            args += ["--filter", f"label={key}={value}" if value else f"label={key}"]
        ids = list(dict.fromkeys(self._docker(*args).stdout.split()))
        return self._inspect_images(ids) if ids else []

    def push(self, ref: str) -> None:
        self._docker("image", "push", ref, timeout=None)

    def pull(self, ref: str) -> None:
        self._docker("image", "pull", ref, timeout=None)

    def save(self, refs: Sequence[str], dest: Path) -> Path:
        """`docker save` to a tarball (tests use it to look inside layers)."""
        self._docker("image", "save", "--output", dest, *refs, timeout=None)
        return dest

    def load(self, tarball: Path) -> None:
        self._docker("image", "load", "--input", tarball, timeout=None)

    def history(self, ref: str) -> list[str]:
        """The command that made each layer, newest first."""
        out = self._docker(
            "image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", ref
        ).stdout
        return out.splitlines()

    def import_rootfs(
        self, tarball: Path, ref: str, changes: Sequence[str] = (), message: str | None = None
    ) -> ImageInfo:
        """`docker import` a root filesystem tarball as `ref`, with Dockerfile `changes`."""
        args: list[str] = ["image", "import"]
        for change in changes:
            args += ["--change", change]
        if message:
            args += ["--message", message]
        self._docker(*args, os.fspath(tarball), ref, timeout=None)
        return self.inspect_image(ref)

    def export_filesystem(self, ref: str, dest_dir: Path) -> Path:
        """Unpack the filesystem of image `ref` into `dest_dir` (created; must be empty).

        Creates a container (never started), `docker export`s it and untars it.
        Device nodes under /dev are left out; ownership is kept when root.
        """
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        if any(dest_dir.iterdir()):
            raise EngineError(f"`{dest_dir}` is not empty", hint="export into an empty folder")
        name = f"ember-export-{secrets.token_hex(4)}"
        self._docker(
            "container", "create", "--name", name, "--network", "none", ref, "/ember-export"
        )
        try:
            with tempfile.TemporaryDirectory(prefix=".ember-export-", dir=dest_dir.parent) as tmp:
                tarball = Path(tmp) / "fs.tar"
                self._docker("container", "export", "--output", tarball, name, timeout=None)
                tar = ["tar", "-x", "-f", os.fspath(tarball), "-C", os.fspath(dest_dir)]
                tar += ["--anchored", "--exclude=dev/*"]
                if os.geteuid() != 0:
                    tar += ["--no-same-owner", "--no-same-permissions"]
                self._announce(tar)
                try:
                    proc.run(tar, timeout=None)
                except proc.CommandError as exc:
                    raise EngineError(
                        f"cannot unpack the filesystem of `{ref}`: {exc.message}",
                        command=exc.argv,
                        returncode=exc.returncode,
                        log_tail=exc.tail(),
                    ) from exc
        finally:
            self._docker("container", "rm", "--force", name, check=False)
        return dest_dir

    def copy_from_image(self, ref: str, path: str, dest: Path) -> Path:
        """Copy one file or folder `path` out of image `ref` to `dest` (symlinks kept).

        Cheaper than `export_filesystem` for a few artifacts of a large image:
        creates a container (never started), `docker cp`s the path, removes it.
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        name = f"ember-copy-{secrets.token_hex(4)}"
        self._docker("container", "create", "--name", name, "--network", "none", ref, "/ember-copy")
        try:
            self._docker("container", "cp", f"{name}:{path}", os.fspath(dest), timeout=None)
        finally:
            self._docker("container", "rm", "--force", name, check=False)
        return dest

    # ------------------------------------------------------------ containers

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
    ) -> proc.Completed:
        """Run a short one-off command in a fresh container (removed afterwards).

        Returns the Completed result (exit code, stdout, stderr); with `check`,
        a non-zero exit raises EngineError. On a timeout or Ctrl-C the
        container is removed before the error propagates.
        """
        name = f"ember-run-{secrets.token_hex(4)}"
        args: list[str] = ["container", "run", "--rm", "--name", name]
        if network:
            args += ["--network", network]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        for src, dst in volumes:
            args += ["--volume", f"{os.fspath(src)}:{dst}"]
        if entrypoint is not None:
            args += ["--entrypoint", entrypoint]
        if user is not None:
            args += ["--user", user]
        if workdir is not None:
            args += ["--workdir", workdir]
        args += [image, *command]
        try:
            result = self._docker(*args, check=False, timeout=timeout)
        except BaseException:
            self._docker("container", "rm", "--force", name, check=False)
            raise
        if check and not result.ok:
            if result.returncode == 125 or self._unreachable(
                result.stderr, result.argv, result.returncode
            ):
                raise self._failed(result)
            raise EngineError(
                f"`{proc.display(command or [image], 80)}` in `{image}` exited with code {result.returncode}",
                command=result.argv,
                returncode=result.returncode,
                log_tail=result.tail(),
            )
        return result

    # ------------------------------------------------------------ builds

    def _backend_for(self, request: BuildRequest) -> tuple[str, bool]:
        """(backend, rawjson) for this request."""
        if self.backend != "auto":
            caps = self._capabilities() if self.backend == "buildx" else None
            return self.backend, bool(caps and caps.rawjson)
        caps = self._capabilities()
        if caps.buildx_version:
            return "buildx", caps.rawjson
        major = re.match(r"\d+", caps.client_version)
        if major is not None and int(major.group(0)) < 23:
            return "buildkit", False  # clients before 23.0 have BuildKit built in
        return "classic", False

    def build_argv(
        self, request: BuildRequest, backend: str, rawjson: bool
    ) -> tuple[list[str], dict[str, str]]:
        """The build command line and its environment additions (pure but for docker_cmd)."""
        argv = self.docker_cmd()
        env: dict[str, str] = {}
        if backend == "buildx":
            argv += ["buildx", "build", "--load", f"--progress={'rawjson' if rawjson else 'plain'}"]
            builder = request.builder or self.builder
            if builder:
                argv += ["--builder", builder]
            env["DOCKER_CLI_EXPERIMENTAL"] = "enabled"
        elif backend == "buildkit":
            argv += ["build", "--progress=plain"]
            env["DOCKER_BUILDKIT"] = "1"
        else:
            argv += ["build", "--force-rm"]  # no stopped containers left by a failed step
            env["DOCKER_BUILDKIT"] = "0"
        argv += ["--file", os.fspath(request.dockerfile_path)]
        for tag in request.tags:
            argv += ["--tag", tag]
        if not request.tags:
            argv += ["--iidfile", os.fspath(request.context_dir / ".ember-iid")]
        for key, value in request.build_args.items():
            argv += ["--build-arg", f"{key}={value}"]
        for key, value in request.labels.items():
            argv += ["--label", f"{key}={value}"]
        if backend != "classic":
            for sid, src in request.secrets.items():
                argv += ["--secret", f"id={sid},src={os.fspath(src)}"]
        if request.network:
            argv += ["--network", request.network]
        if request.target:
            argv += ["--target", request.target]
        if request.no_cache:
            argv += ["--no-cache"]
        if request.platform and backend != "classic":
            argv += ["--platform", request.platform]
        argv.append(os.fspath(request.context_dir))
        return argv, env

    def build(self, request: BuildRequest, on_event: EventSink | None = None) -> BuildResult:
        """Build one image and load it into the engine; events go to `on_event`.

        Raises BuildFailed (with the failing step, its log tail and a hint)
        when the build fails; KeyboardInterrupt after the builder is stopped.
        """
        sink = on_event or null_sink
        self._check_inputs(request)
        backend, rawjson = self._backend_for(request)
        if backend == "classic":
            if request.secrets:
                raise EngineError(
                    "the classic builder cannot pass build secrets",
                    hint="install the buildx plugin: sudo scripts/setup-engine",
                )
            if _MOUNT_FLAG.search(
                request.dockerfile_path.read_text(encoding="utf-8", errors="replace")
            ):
                raise EngineMissing(
                    f"`{request.dockerfile_path}` uses `RUN --mount`, which needs BuildKit, and "
                    "this engine offers only the classic builder",
                    hint="install the buildx plugin: sudo scripts/setup-engine",
                )
            sink(
                Warn(
                    "building with the deprecated classic builder: no BuildKit, no cache or secret mounts (install buildx: scripts/setup-engine)"
                )
            )
        argv, env = self.build_argv(request, backend, rawjson)
        parser: RawJsonProgress | PlainProgress | ClassicProgress
        if backend == "classic":
            parser = ClassicProgress(sink)
        elif rawjson:
            parser = RawJsonProgress(sink)
        else:
            parser = PlainProgress(sink)
        image = request.name or (request.tags[0] if request.tags else "<untagged>")
        self._announce(argv, env, extra=on_event)
        sink(BuildStarted(image, backend, os.fspath(request.context_dir)))
        started = time.monotonic()
        raw_log: IO[bytes] | None = None
        if request.log_path is not None:
            request.log_path.parent.mkdir(parents=True, exist_ok=True)
            raw_log = open(request.log_path, "ab")
        try:
            try:
                result = proc.stream(
                    argv, parser.feed, env=env, check=False, raw_log=raw_log, timeout=None
                )
            except proc.CommandError as exc:
                raise self._error(exc) from exc
            except BaseException:
                sink(
                    BuildFinished(
                        image, time.monotonic() - started, False, None, parser.steps, parser.cached
                    )
                )
                raise
        finally:
            if raw_log is not None:
                raw_log.close()
        parser.finish_stream()
        seconds = time.monotonic() - started
        if not result.ok:
            sink(BuildFinished(image, seconds, False, None, parser.steps, parser.cached))
            missing = self._unreachable(result.stderr + result.stdout, argv, result.returncode)
            if missing is not None:
                raise missing
            raise self._build_failed(request, image, result, parser)
        if request.tags:
            image_id = self._docker(
                "image", "inspect", "--format", "{{.Id}}", request.tags[0]
            ).stdout.strip()
        else:
            iid = request.context_dir / ".ember-iid"
            image_id = iid.read_text().strip()
            iid.unlink(missing_ok=True)
        sink(BuildFinished(image, seconds, True, image_id, parser.steps, parser.cached))
        return BuildResult(image_id, request.tags, seconds, parser.steps, parser.cached, backend)

    def _check_inputs(self, request: BuildRequest) -> None:
        if not request.context_dir.is_dir():
            raise EngineError(f"build context `{request.context_dir}` is not a folder")
        if not request.dockerfile_path.is_file():
            raise EngineError(f"no Dockerfile at `{request.dockerfile_path}`")
        for sid, src in request.secrets.items():
            if not src.is_file() or not os.access(src, os.R_OK):
                raise EngineError(
                    f"build secret `{sid}`: cannot read `{src}`",
                    hint="give a readable file as the secret's source",
                )

    def _build_failed(
        self,
        request: BuildRequest,
        image: str,
        result: proc.Completed,
        parser: RawJsonProgress | PlainProgress | ClassicProgress,
    ) -> BuildFailed:
        failure = parser.failure()
        tail = failure.tail or result.tail()
        error = failure.error or proc.last_line(result.stderr) or proc.last_line(result.stdout)
        error = error.removeprefix("ERROR: ").strip()
        where = f" at `{' '.join(failure.step.split())[:100]}`" if failure.step else ""
        haystack = "\n".join([error, tail, result.stderr[-4000:]])
        hint = next((h for needle, h in FAILURE_HINTS if needle in haystack), None)
        if hint is None and request.log_path is not None:
            hint = f"full log: {request.log_path}"
        return BuildFailed(
            f"build of `{image}` failed{where}: {error}",
            command=result.argv,
            returncode=result.returncode,
            log_tail=tail,
            hint=hint,
        )

    # ------------------------------------------------------------ compose

    def _compose_base(self, project_dir: Path, compose_file: Path, project_name: str) -> list[str]:
        caps = self._capabilities()
        if caps.compose_version is None:
            raise EngineMissing(
                "neither `docker compose` (v2) nor `docker-compose` (v1) is installed",
                hint="install the compose plugin: sudo scripts/setup-engine",
            )
        if caps.compose_v1:
            base = list(self.compose_v1_call)
            if self.host:
                base += ["--host", self.host]
            if self.context:
                base += ["--context", self.context]
        else:
            base = [*self.docker_cmd(), "compose"]
        return [
            *base,
            "--project-directory",
            os.fspath(project_dir),
            "--file",
            os.fspath(compose_file),
            "--project-name",
            project_name,
        ]

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
    ) -> ComposeResult:
        """Run one compose verb for a project.

        `up` starts detached and waits until every service is running and
        (where it has a healthcheck) healthy: `--wait` on compose v2, polling on
        v1. `ps` returns the project's containers as ServiceState. `down`
        removes containers and networks (and orphans).
        """
        project_dir = Path(project_dir)
        compose_file = Path(compose_file)
        if not compose_file.is_absolute():
            compose_file = project_dir / compose_file
        base = self._compose_base(project_dir, compose_file, project_name)
        v1 = self._capabilities().compose_v1
        words: list[str]
        if verb == "up":
            words = ["up", "--detach", *([] if v1 else ["--wait"]), *args]
        elif verb == "down":
            words = ["down", "--remove-orphans", *args]
        elif verb == "logs":
            words = ["logs", "--no-color", *args]
        elif verb == "ps":
            words = ["ps", "--all", "--quiet", *args]
        else:
            words = [verb, *args]
        argv = base + words
        self._announce(argv, extra=on_event)
        limit = (
            timeout
            if timeout is not None
            else (HEALTH_TIMEOUT if verb in ("up", "restart") else QUICK_TIMEOUT)
        )
        try:
            result = proc.run(
                argv, timeout=limit if verb != "pull" else None, check=False, cwd=project_dir
            )
        except proc.CommandTimeout as exc:
            raise EngineError(
                f"`compose {verb}` of project `{project_name}` did not finish within {limit:g}s",
                command=exc.argv,
                log_tail=self._compose_logs(base),
                hint=f"see the logs: {proc.display([*base, 'logs'], 200)}",
            ) from exc
        except proc.CommandError as exc:
            raise self._error(exc) from exc
        if not result.ok:
            missing = self._unreachable(result.stderr, argv, result.returncode)
            if missing is not None:
                raise missing
            raise EngineError(
                f"`compose {verb}` of project `{project_name}` failed (exit {result.returncode}): "
                f"{proc.last_line(result.stderr) or proc.last_line(result.stdout)}",
                command=argv,
                returncode=result.returncode,
                log_tail=(result.tail(15) + "\n" + self._compose_logs(base)).strip()
                if verb in ("up", "restart")
                else result.tail(),
                hint=f"see the logs: {proc.display([*base, 'logs'], 200)}",
            )
        services: tuple[ServiceState, ...] = ()
        if verb == "ps":
            services = tuple(self._services(result.stdout.split()))
        elif verb in ("up", "restart"):
            # v2's `up --wait` has waited already (then this returns at once); v1 and
            # `restart` have not.
            services = tuple(self._wait_healthy(base, project_name, limit))
        return ComposeResult(verb, tuple(argv), result.stdout + result.stderr, services)

    def compose_follow(
        self,
        project_dir: Path,
        compose_file: Path,
        project_name: str,
        on_line: proc.LineCallback,
        tail: str = "200",
    ) -> None:
        """`compose logs --follow`: each line to `on_line` until the project stops or Ctrl-C."""
        base = self._compose_base(Path(project_dir), Path(compose_file), project_name)
        argv = [*base, "logs", "--no-color", "--follow", "--tail", tail]
        self._announce(argv)
        proc.stream(argv, on_line, timeout=None, check=False, cwd=project_dir)

    def _compose_logs(self, base: list[str]) -> str:
        try:
            logs = proc.run([*base, "logs", "--no-color", "--tail", "40"], check=False, timeout=30)
        except proc.CommandError:
            return ""
        return proc.tail_of(_ANSI.sub("", logs.stdout + logs.stderr), 40)

    def _services(self, ids: Sequence[str]) -> list[ServiceState]:
        if not ids:
            return []
        from python_on_whales.components.container.models import ContainerInspectResult

        result = self._docker("container", "inspect", *ids)
        states = []
        for obj in json.loads(result.stdout):
            c = ContainerInspectResult(**obj)
            labels = (c.config.labels if c.config is not None else None) or {}
            st = c.state
            health = st.health.status if st is not None and st.health is not None else None
            states.append(
                ServiceState(
                    container_id=c.id or "",
                    name=(c.name or "").lstrip("/"),
                    service=labels.get("com.docker.compose.service", ""),
                    state=(st.status if st is not None else None) or "unknown",
                    health=health or None,
                    exit_code=int((st.exit_code if st is not None else 0) or 0),
                )
            )
        return sorted(states, key=lambda s: (s.service, s.name))

    def _wait_healthy(
        self, base: list[str], project_name: str, timeout: float
    ) -> list[ServiceState]:
        """Poll until every container runs and is healthy (or has no healthcheck)."""
        deadline = time.monotonic() + timeout
        while True:
            ids = proc.run([*base, "ps", "--all", "--quiet"], timeout=QUICK_TIMEOUT).stdout.split()
            services = self._services(ids)
            bad = [s for s in services if s.health == "unhealthy" or s.state in ("exited", "dead")]
            if bad:
                raise EngineError(
                    f"compose project `{project_name}`: service `{bad[0].service}` is "
                    f"{bad[0].health if bad[0].health == 'unhealthy' else bad[0].state}",
                    command=base,
                    log_tail=self._compose_logs(base),
                    hint=f"see the logs: {proc.display([*base, 'logs'], 200)}",
                )
            if services and all(
                s.state == "running" and s.health in (None, "healthy") for s in services
            ):
                return services
            if time.monotonic() > deadline:
                raise EngineError(
                    f"compose project `{project_name}` was not healthy within {timeout:g}s",
                    command=base,
                    log_tail=self._compose_logs(base),
                )
            time.sleep(0.5)
