"""A second daemon on its own socket, reached through DOCKER_HOST: remote engines work."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from ember.engine import BuildRequest, atomic_build, default_engine
from ember.engine.docker import DEFAULT_SOCKET, DockerEngine
from ember.errors import BuildFailed
from ember.events import CommandStarted, Event
from engine_fixtures import Daemon, unique

pytest_plugins = ["engine_fixtures"]  # engine, resources, base_image, ...
pytestmark = pytest.mark.engine


def test_second_daemon_through_docker_host(
    engine: DockerEngine, second_daemon: Daemon, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # An engine without an explicit host follows DOCKER_HOST at call time: pin the first one.
    first = DockerEngine(host=os.environ.get("DOCKER_HOST", DEFAULT_SOCKET))
    monkeypatch.setenv("DOCKER_HOST", second_daemon.host)
    remote = default_engine()
    info = remote.info()
    assert info.endpoint == second_daemon.host
    assert info.server_version
    assert remote.list_images() == []  # a fresh data root

    # Build FROM scratch (nothing to pull), with atomic tags, on the remote engine.
    (tmp_path / "hello.txt").write_text("hello from the second daemon\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    label = unique("remote")
    ref = f"ember-test/{label}:1"
    seen: list[Event] = []
    result = atomic_build(
        remote,
        BuildRequest(tmp_path, tags=(ref,), labels={"org.ember.test": label}),
        on_event=seen.append,
    )
    commands = [e for e in seen if isinstance(e, CommandStarted)]
    assert commands and all(("DOCKER_HOST", second_daemon.host) in c.env for c in commands)
    listed = remote.list_images(labels={"org.ember.test": label})
    assert [i.id for i in listed] == [result.image_id]
    assert listed[0].tags == (ref,)
    assert not first.image_exists(ref)  # the first daemon never saw it

    # Import a root filesystem there too, and read it back.
    root = tmp_path / "root"
    root.mkdir()
    (root / "marker").write_text("imported\n")
    tarball = tmp_path / "root.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(root, arcname=".")
    imported = remote.import_rootfs(tarball, f"ember-test/{label}-import:1")
    assert imported.tags == (f"ember-test/{label}-import:1",)
    fs = remote.export_filesystem(ref, tmp_path / "fs")
    assert (fs / "hello.txt").read_text() == "hello from the second daemon\n"

    # The same engine through an explicit host, without DOCKER_HOST.
    monkeypatch.delenv("DOCKER_HOST")
    explicit = DockerEngine(host=second_daemon.host)
    assert explicit.image_exists(ref)
    assert explicit.info().endpoint == second_daemon.host


def test_docker_context_and_buildx_builder_name_the_remote_engine(
    second_daemon: Daemon, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A docker context (and the buildx builder buildx makes for it) selects the engine."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))  # private contexts
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    name = unique("ember-ctx")
    docker = DockerEngine().docker_cmd()
    subprocess.run(
        [*docker, "context", "create", name, "--docker", f"host={second_daemon.host}"],
        check=True,
        capture_output=True,
    )
    by_context = DockerEngine(context=name)
    assert by_context.endpoint == f"docker context `{name}`"
    label = unique("ctx")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
    ref = f"ember-test/{label}:1"
    by_context.build(BuildRequest(tmp_path, tags=(ref,)))
    assert DockerEngine(host=second_daemon.host).image_exists(ref)

    monkeypatch.setenv("DOCKER_CONTEXT", name)
    assert DockerEngine().endpoint == f"docker context `{name}`"
    monkeypatch.delenv("DOCKER_CONTEXT")

    # A buildx builder instance by name: buildx names one (docker driver) per context.
    ref2 = f"ember-test/{label}:2"
    via_builder = DockerEngine(context=name, builder=name)
    seen: list[Event] = []
    via_builder.build(BuildRequest(tmp_path, tags=(ref2,)), seen.append)
    assert any(
        isinstance(e, CommandStarted) and name in e.argv and "--builder" in e.argv for e in seen
    )
    assert DockerEngine(host=second_daemon.host).image_exists(ref2)
    # A docker-driver builder of another context is refused by buildx: a clear BuildFailed.
    with pytest.raises(BuildFailed, match="switch to context"):
        DockerEngine(builder=name).build(BuildRequest(tmp_path, tags=(f"ember-test/{label}:3",)))
