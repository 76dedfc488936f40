"""The command lines the Docker engine builds (no engine needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember.engine.docker import DockerEngine, _Capabilities
from ember.engine.interface import BuildRequest
from ember.errors import EngineMissing


def engine(**caps: object) -> DockerEngine:
    eng = DockerEngine(builder="mybuilder")
    eng._prefix = ("docker",)
    values = {"client_version": "28.2.2", "buildx_version": "0.13.1", "rawjson": True,
              "compose_version": "2.26.1", "compose_v1": False}  # fmt: skip
    values.update(caps)
    eng._caps = _Capabilities(**values)  # type: ignore[arg-type]
    return eng


REQUEST = BuildRequest(
    Path("/ctx"),
    dockerfile=Path("/ctx/Dockerfile.runtime"),
    tags=("ember/app:1",),
    build_args={"CUDA": "11.4"},
    secrets={"cacert": Path("/etc/ssl/certs/ca-certificates.crt")},
    target="runtime",
    no_cache=True,
    labels={"org.ember.spec": "abc"},
    platform="linux/amd64",
)


def test_buildx_argv() -> None:
    eng = engine()
    backend, rawjson = eng._backend_for(REQUEST)
    argv, env = eng.build_argv(REQUEST, backend, rawjson)
    assert (backend, rawjson) == ("buildx", True)
    assert argv == [
        "docker", "buildx", "build", "--load", "--progress=rawjson", "--builder", "mybuilder",
        "--file", "/ctx/Dockerfile.runtime", "--tag", "ember/app:1",
        "--build-arg", "CUDA=11.4", "--label", "org.ember.spec=abc",
        "--secret", "id=cacert,src=/etc/ssl/certs/ca-certificates.crt",
        "--network", "host", "--target", "runtime", "--no-cache", "--platform", "linux/amd64",
        "/ctx",
    ]  # fmt: skip
    assert env == {"DOCKER_CLI_EXPERIMENTAL": "enabled"}


def test_plain_progress_without_rawjson() -> None:
    eng = engine(rawjson=False)
    argv, _ = eng.build_argv(REQUEST, *eng._backend_for(REQUEST))
    assert "--progress=plain" in argv


def test_buildkit_when_buildx_is_absent_from_an_old_client() -> None:
    eng = engine(buildx_version=None, rawjson=False, client_version="20.10.24+dfsg1")
    backend, rawjson = eng._backend_for(REQUEST)
    argv, env = eng.build_argv(REQUEST, backend, rawjson)
    assert backend == "buildkit"
    assert argv[:3] == ["docker", "build", "--progress=plain"]
    assert "--builder" not in argv and "--load" not in argv
    assert "id=cacert,src=/etc/ssl/certs/ca-certificates.crt" in argv
    assert env == {"DOCKER_BUILDKIT": "1"}


def test_classic_when_a_new_client_lacks_buildx() -> None:
    eng = engine(buildx_version=None, rawjson=False)
    backend, rawjson = eng._backend_for(REQUEST)
    argv, env = eng.build_argv(REQUEST, backend, rawjson)
    assert backend == "classic"
    assert "--secret" not in argv and "--platform" not in argv
    assert env == {"DOCKER_BUILDKIT": "0"}


def test_untagged_build_uses_an_iidfile() -> None:
    eng = engine()
    argv, _ = eng.build_argv(BuildRequest(Path("/ctx")), "buildx", True)
    assert argv[argv.index("--iidfile") + 1] == "/ctx/.ember-iid"


def test_compose_v2_and_v1_command_lines() -> None:
    v2 = engine()._compose_base(Path("/p"), Path("/p/compose.yaml"), "demo")
    assert v2 == ["docker", "compose", "--project-directory", "/p", "--file", "/p/compose.yaml",
                  "--project-name", "demo"]  # fmt: skip
    eng = engine(compose_v1=True, compose_version="1.29.2")
    eng.host = "tcp://10.0.0.2:2375"
    v1 = eng._compose_base(Path("/p"), Path("/p/compose.yaml"), "demo")
    assert v1[:3] == ["docker-compose", "--host", "tcp://10.0.0.2:2375"]
    with pytest.raises(EngineMissing, match="neither `docker compose`"):
        engine(compose_version=None)._compose_base(Path("/p"), Path("/p/c.yaml"), "demo")


def test_missing_client_is_engine_missing() -> None:
    with pytest.raises(EngineMissing, match="no `no-such-docker` client found"):
        DockerEngine(client=("no-such-docker",)).docker_cmd()
