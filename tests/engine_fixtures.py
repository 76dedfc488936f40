"""Fixtures for tests that need a real container engine.

* `engine` / `engine_info`: the engine the environment names. Without one the
  test is skipped, except under `CI=true`, where it FAILS: CI must not go
  green by skipping.
* `resources`: registers every image, container, network and compose project
  a test creates, and removes them in teardown whatever happened.
* `base_image`: `ember-test/debian:bookworm`, debootstrapped once and then
  reused (also across sessions: about 30-70 s the first time).
* `second_daemon`: a private dockerd on its own socket, for remote-engine tests.

Test modules name this module in `pytest_plugins` (and import its helpers:
`unique`, `Resources`, `TEST_REPO`); the root conftest may list it instead.
Plain asserts here, so importing it before pytest registers it is fine:
PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ember.engine.docker import DockerEngine
from ember.engine.interface import EngineInfo
from ember.errors import EmberError, EngineMissing

TEST_BASE_IMAGE = "ember-test/debian:bookworm"
TEST_REPO = "ember-test"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip locally; under CI=true a missing prerequisite is a failure."""
    if in_ci():
        pytest.fail(f"CI=true, and: {reason}", pytrace=False)
    pytest.skip(reason)


def unique(prefix: str) -> str:
    """A name no other test (or engineer sharing the daemon) uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def engine() -> DockerEngine:
    eng = DockerEngine.from_env()
    try:
        eng.info()
    except EngineMissing as exc:
        skip_or_fail(f"no container engine: {exc}")
    return eng


@pytest.fixture(scope="session")
def engine_info(engine: DockerEngine) -> EngineInfo:
    return engine.info()


@dataclass
class Resources:
    """What a test made on the engine; `cleanup()` removes it all (and keeps going on errors)."""

    engine: DockerEngine
    images: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    projects: list[tuple[Path, Path, str]] = field(default_factory=list)

    def image(self, ref: str) -> str:
        self.images.append(ref)
        return ref

    def container(self, name: str) -> str:
        self.containers.append(name)
        return name

    def network(self, name: str) -> str:
        self.networks.append(name)
        return name

    def project(self, project_dir: Path, compose_file: Path, name: str) -> str:
        self.projects.append((project_dir, compose_file, name))
        return name

    def cleanup(self) -> list[str]:
        problems: list[str] = []
        for project_dir, compose_file, name in reversed(self.projects):
            try:
                self.engine.compose(
                    project_dir, compose_file, name, "down", ["--volumes", "--timeout", "1"]
                )
            except EmberError as exc:
                problems.append(f"compose down {name}: {exc}")
        docker = self.engine.docker_cmd()
        for name in reversed(self.containers):
            subprocess.run(
                [*docker, "container", "rm", "--force", name], capture_output=True, check=False
            )
        for ref in reversed(self.images):
            try:
                self.engine.remove_image(ref, force=True, missing_ok=True)
            except EmberError as exc:
                problems.append(f"remove {ref}: {exc}")
        for name in reversed(self.networks):
            subprocess.run([*docker, "network", "rm", name], capture_output=True, check=False)
        return problems


@pytest.fixture
def resources(engine: DockerEngine) -> Iterator[Resources]:
    res = Resources(engine)
    try:
        yield res
    finally:
        problems = res.cleanup()
        if problems:
            pytest.fail("cleanup failed: " + "; ".join(problems))


@pytest.fixture(scope="session")
def base_image(engine: DockerEngine) -> str:
    """The test base image, made once with debootstrap and then reused."""
    if engine.image_exists(TEST_BASE_IMAGE):
        return TEST_BASE_IMAGE
    from ember.base import BootstrapError, bootstrap_base_image

    try:
        bootstrap_base_image(engine, TEST_BASE_IMAGE)
    except BootstrapError as exc:
        skip_or_fail(f"cannot make {TEST_BASE_IMAGE}: {exc}")
    return TEST_BASE_IMAGE


@dataclass
class Daemon:
    host: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def second_daemon() -> Iterator[Daemon]:
    """A private dockerd on its own socket, data root and exec root (no bridge, no iptables)."""
    dockerd = shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/usr/bin")
    if dockerd is None:
        skip_or_fail("dockerd is not installed (sudo scripts/setup-engine)")
    if os.geteuid() != 0:
        skip_or_fail("a second dockerd needs root")
    assert dockerd is not None
    root = Path(tempfile.mkdtemp(prefix="ember-d2-", dir="/tmp"))  # short: socket paths are limited
    host = f"unix://{root}/docker.sock"
    log = root / "dockerd.log"
    argv = [
        dockerd,
        "--host", host,
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "--pidfile", str(root / "docker.pid"),
        "--bridge", "none",
        "--iptables=false",
        "--ip-masq=false",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    daemon = Daemon(host, root, process, log)
    try:
        probe = DockerEngine(host=host)
        deadline = time.monotonic() + 60
        while True:
            try:
                probe.info()
                break
            except EngineMissing:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"second dockerd did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.3)
        yield daemon
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _remove_daemon_root(root)


def _remove_daemon_root(root: Path) -> None:
    """Remove a daemon's folder, after unmounting anything (overlay, shm) left below it."""
    real = os.path.realpath(root)
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        points = [
            line.split()[1]
            for line in mounts
            if len(line.split()) > 1 and line.split()[1].startswith(real + "/")
        ]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    with contextlib.suppress(OSError):
        shutil.rmtree(root)
