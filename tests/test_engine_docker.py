"""The Docker engine against a real daemon: builds, events, secrets, atomic tags, export."""

from __future__ import annotations

import hashlib
import os
import secrets
import tarfile
from pathlib import Path

import pytest

from ember.engine import BuildRequest, ImageNotFound, atomic_build
from ember.engine.atomic import is_temp_tag, repository_of
from ember.engine.docker import DockerEngine
from ember.engine.interface import EngineInfo
from ember.errors import BuildFailed, EngineError, EngineMissing
from ember.events import (
    BuildFinished,
    BuildStarted,
    CommandStarted,
    Event,
    LogFolder,
    LogLine,
    StepFinished,
    StepStarted,
    Tagged,
    Warn,
    fan_out,
)
from engine_fixtures import TEST_REPO, Resources, unique

pytest_plugins = ["engine_fixtures"]  # engine, resources, base_image, ...
pytestmark = pytest.mark.engine


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def finished(self, needle: str) -> StepFinished:
        found = [e for e in self.of(StepFinished) if needle in e.name]
        assert found, (
            f"no finished step with {needle!r} in {[e.name for e in self.of(StepFinished)]}"
        )
        return found[-1]


def two_stage(base: str, cache_id: str) -> str:
    return f"""\
FROM {base} AS build
ARG RUN_ID=none
RUN --mount=type=cache,id={cache_id},target=/cache echo "$RUN_ID" >> /cache/runs && cp /cache/runs /runs
RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /secret-size \\
 && sha256sum /run/secrets/token | cut -d' ' -f1 > /secret-sha
FROM {base}
COPY --from=build /runs /secret-size /secret-sha /out/
RUN echo built > /out/stamp
"""


def temp_tags_of(engine: DockerEngine, repo: str) -> list[str]:
    return [
        t
        for image in engine.list_images(f"{repo}:*")
        for t in image.tags
        if is_temp_tag(t) and repository_of(t) == repo
    ]


def read_from_image(engine: DockerEngine, ref: str, *paths: str) -> list[str]:
    result = engine.run(ref, ["cat", *paths], network="none")
    return result.stdout.split()


def test_info_reports_versions_plugins_and_runtimes(engine_info: EngineInfo) -> None:
    assert engine_info.server_version
    assert engine_info.client_version
    assert "runc" in engine_info.runtimes
    assert engine_info.has_runtime("runc") and not engine_info.has_runtime("no-such-runtime")
    assert engine_info.endpoint
    if engine_info.has_buildx:
        assert engine_info.buildx_version and engine_info.buildx_version[0].isdigit()


def test_unreachable_engine_is_engine_missing_with_a_hint(tmp_path: Path) -> None:
    sock = f"unix://{tmp_path}/none.sock"
    with pytest.raises(EngineMissing) as caught:
        DockerEngine(host=sock).info()
    assert f"cannot reach the Docker engine at {sock}" in str(caught.value)
    assert "scripts/setup-engine" in (caught.value.hint or "")
    with pytest.raises(EngineMissing):
        DockerEngine(host=sock).image_exists("anything:1")


def test_inspect_missing_image(engine: DockerEngine) -> None:
    ref = f"{TEST_REPO}/{unique('absent')}:1"
    assert engine.image_exists(ref) is False
    with pytest.raises(ImageNotFound):
        engine.inspect_image(ref)
    assert engine.remove_image(ref) is False


def test_two_stage_build_with_cache_and_secret_mounts(
    engine: DockerEngine, base_image: str, resources: Resources, tmp_path: Path
) -> None:
    token = f"ember-secret-{secrets.token_hex(12)}"
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(token)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(two_stage(base_image, unique("ember-test-cache")))
    repo = f"{TEST_REPO}/{unique('two-stage')}"
    ref = resources.image(f"{repo}:latest")
    logs = LogFolder(tmp_path / "log")
    rec = Recorder()

    def request(run_id: str) -> BuildRequest:
        return BuildRequest(
            context,
            tags=(ref,),
            build_args={"RUN_ID": run_id},
            secrets={"token": secret_file},
            labels={"org.ember.test": "two-stage"},
            log_path=tmp_path / "raw.log",
        )

    first = atomic_build(engine, request("a"), on_event=fan_out(rec, logs))
    second = atomic_build(engine, request("b"), on_event=rec)
    logs.close()

    # The secret was readable in the RUN step...
    size, sha, *runs = read_from_image(
        engine, ref, "/out/secret-size", "/out/secret-sha", "/out/runs"
    )
    assert int(size) == len(token)
    assert sha == hashlib.sha256(token.encode()).hexdigest()
    # ...and the cache mount kept the first build's run for the second.
    assert runs[-2:] == ["a", "b"]
    assert first.image_id != second.image_id
    assert engine.inspect_image(ref).id == second.image_id
    assert engine.inspect_image(ref).labels["org.ember.test"] == "two-stage"

    # The secret is in no layer, no history entry, no log and no recorded command.
    saved = engine.save([ref], tmp_path / "image.tar")
    assert token.encode() not in saved.read_bytes()
    with tarfile.open(saved) as outer:
        for member in outer.getmembers():
            if member.isfile():
                data = outer.extractfile(member)
                assert data is not None
                assert token.encode() not in data.read(), member.name
    assert not any(token in line for line in engine.history(ref))
    for name in ("build.log", "events.jsonl", "commands.sh"):
        assert token not in (tmp_path / "log" / name).read_text()
    assert token not in (tmp_path / "raw.log").read_text(errors="replace")
    commands = (tmp_path / "log" / "commands.sh").read_text()
    assert f"id=token,src={secret_file}" in commands
    assert "buildx build" in commands or " build " in commands
    assert f"image tag {repo}:ember-tmp-" in commands  # the atomic tag move is recorded too

    # Events: steps start and finish, by stage.
    kinds = {type(e) for e in rec.events}
    assert {BuildStarted, StepStarted, StepFinished, BuildFinished, CommandStarted, Tagged} <= kinds
    started = {e.id for e in rec.of(StepStarted)}
    assert all(f.id in started for f in rec.of(StepFinished))
    secret_step = rec.finished("type=secret")
    assert secret_step.stage == "build" and secret_step.error is None
    assert [e.ok for e in rec.of(BuildFinished)] == [True, True]
    assert [e.tag for e in rec.of(Tagged)] == [ref, ref]
    assert temp_tags_of(engine, repo) == []


def test_rebuild_reports_cache_hits(
    engine: DockerEngine, base_image: str, resources: Resources, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image} AS one\nRUN echo one > /one\nFROM {base_image}\n"
        "COPY --from=one /one /one\nRUN echo two > /two\n"
    )
    ref = resources.image(f"{TEST_REPO}/{unique('cached')}:1")
    cold = Recorder()
    first = engine.build(BuildRequest(tmp_path, tags=(ref,), no_cache=True), cold)
    rec = Recorder()
    again = engine.build(BuildRequest(tmp_path, tags=(ref,)), rec)
    assert not cold.finished("echo one").cached and not cold.finished("echo two").cached
    assert again.cached >= 3 > first.cached
    assert rec.finished("echo one").cached and rec.finished("echo two").cached
    assert rec.finished("COPY --from=one").cached
    assert rec.of(BuildFinished)[-1].cached == again.cached
    assert again.image_id == first.image_id


def test_failing_build_keeps_previous_image_and_leaves_no_temp_tag(
    engine: DockerEngine, base_image: str, resources: Resources, tmp_path: Path
) -> None:
    repo = f"{TEST_REPO}/{unique('fail')}"
    ref = resources.image(f"{repo}:latest")
    good = tmp_path / "good"
    good.mkdir()
    (good / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo v1 > /version\n")
    before = atomic_build(engine, BuildRequest(good, tags=(ref,)))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN echo v2 > /version\n"
        "RUN echo about to fail && echo to stderr >&2 && exit 3\n"
    )
    rec = Recorder()
    with pytest.raises(BuildFailed) as caught:
        atomic_build(engine, BuildRequest(bad, tags=(ref,)), on_event=rec)
    failure = caught.value
    assert failure.returncode not in (None, 0)
    assert "about to fail" in failure.log_tail
    assert "exit code: 3" in str(failure)
    assert f"`{ref}`" in str(failure)  # named by its final tag, not the temporary one
    assert failure.command and "build" in failure.command
    assert rec.finished("exit 3").error
    assert rec.of(BuildFinished)[-1].ok is False
    assert engine.inspect_image(ref).id == before.image_id
    assert read_from_image(engine, ref, "/version") == ["v1"]
    assert temp_tags_of(engine, repo) == []


def test_registry_pull_failure_gets_a_hint(
    engine: DockerEngine, resources: Resources, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {TEST_REPO}/{unique('nowhere')}:none\n")
    with pytest.raises(BuildFailed) as caught:
        engine.build(
            BuildRequest(tmp_path, tags=(resources.image(f"{TEST_REPO}/x:{unique('t')}"),))
        )
    assert caught.value.hint  # cannot pull: says what to do instead


def test_export_filesystem(
    engine: DockerEngine, base_image: str, resources: Resources, tmp_path: Path
) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN mkdir -p /opt/ember && echo hello > /opt/ember/hello.txt "
        "&& ln -s hello.txt /opt/ember/link\n"
    )
    ref = resources.image(f"{TEST_REPO}/{unique('export')}:1")
    engine.build(BuildRequest(tmp_path / "ctx", tags=(ref,)))
    dest = engine.export_filesystem(ref, tmp_path / "fs")
    assert (dest / "opt/ember/hello.txt").read_text() == "hello\n"
    assert os.readlink(dest / "opt/ember/link") == "hello.txt"
    assert "bookworm" in (dest / "etc/os-release").read_text()
    assert (dest / "bin/sh").exists() or (dest / "usr/bin/sh").exists()
    assert not list((dest / "dev").iterdir()) if (dest / "dev").exists() else True
    with pytest.raises(EngineError, match="not empty"):
        engine.export_filesystem(ref, dest)
    leftovers = engine.run(base_image, ["true"], network="none")  # still a working engine
    assert leftovers.ok


def test_import_rootfs_and_list_by_label(
    engine: DockerEngine, resources: Resources, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hello").write_text("hi\n")
    tarball = tmp_path / "root.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(root, arcname=".")
    label = unique("import")
    ref = resources.image(f"{TEST_REPO}/{label}:1")
    info = engine.import_rootfs(tarball, ref, [f"LABEL org.ember.test={label}", "ENV A=b"])
    assert info.tags == (ref,)
    assert info.labels["org.ember.test"] == label
    listed = engine.list_images(labels={"org.ember.test": label})
    assert [i.id for i in listed] == [info.id]
    assert engine.list_images(f"{TEST_REPO}/{label}:*")[0].id == info.id
    other = resources.image(f"{TEST_REPO}/{label}:2")
    engine.tag(ref, other)
    assert set(engine.inspect_image(other).tags) == {ref, other}
    assert engine.remove_image(other) is True
    assert engine.inspect_image(ref).tags == (ref,)


def test_run_returns_output_and_exit_code(engine: DockerEngine, base_image: str) -> None:
    ok = engine.run(base_image, ["sh", "-c", "echo out; echo err >&2"], network="none")
    assert ok.stdout == "out\n" and "err" in ok.stderr
    failed = engine.run(base_image, ["sh", "-c", "exit 7"], network="none", check=False)
    assert failed.returncode == 7
    with pytest.raises(EngineError, match="exited with code 7"):
        engine.run(base_image, ["sh", "-c", "exit 7"], network="none")
    env = engine.run(base_image, ["sh", "-c", "echo $X"], env={"X": "y z"}, network="none")
    assert env.stdout == "y z\n"


@pytest.mark.parametrize("backend", ["buildkit", "classic"])
def test_fallback_builders(
    backend: str, base_image: str, resources: Resources, tmp_path: Path
) -> None:
    """`DOCKER_BUILDKIT=1 docker build` (a pre-23 client) and the classic builder, for real."""
    client = "/usr/bin/docker"
    if not Path(client).exists():
        pytest.skip("Debian's docker client is not at /usr/bin/docker")
    eng = DockerEngine(client=(client,), backend=backend)  # type: ignore[arg-type]
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image} AS stage\nRUN echo made-by-{backend} | tee /made  # {unique('run')}\n"
        f"FROM {base_image}\nCOPY --from=stage /made /made\n"
    )
    ref = resources.image(f"{TEST_REPO}/{unique(backend)}:1")
    rec = Recorder()
    first = eng.build(BuildRequest(tmp_path, tags=(ref,)), rec)
    assert first.backend == backend
    assert any("made-by" in e.name for e in rec.of(StepFinished))
    assert any(isinstance(e, Warn) for e in rec.events) == (backend == "classic")
    if backend == "buildkit":
        assert any(isinstance(e, LogLine) for e in rec.events)
    again = eng.build(BuildRequest(tmp_path, tags=(ref,)), Recorder())
    assert again.cached >= 1
    assert eng.run(ref, ["cat", "/made"], network="none").stdout == f"made-by-{backend}\n"
    (tmp_path / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo nope && exit 4\n")
    before = set(eng._docker("ps", "--all", "--quiet", "--no-trunc").stdout.split())
    with pytest.raises(BuildFailed) as caught:
        eng.build(BuildRequest(tmp_path, tags=(ref,)))
    assert "nope" in caught.value.log_tail
    after = set(eng._docker("ps", "--all", "--quiet", "--no-trunc").stdout.split())
    leftover = [
        c
        for c in after - before
        if "exit 4" in eng._docker("inspect", "--format", "{{.Config.Cmd}}", c).stdout
    ]
    assert leftover == []  # a failed step leaves no stopped container behind


def test_classic_builder_refuses_secrets(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "s").write_text("x")
    eng = DockerEngine(backend="classic")
    with pytest.raises(EngineError, match="cannot pass build secrets"):
        eng.build(BuildRequest(tmp_path, tags=("x:1",), secrets={"s": tmp_path / "s"}))


def test_missing_secret_file_is_refused_before_building(
    engine: DockerEngine, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(EngineError, match="cannot read"):
        engine.build(BuildRequest(tmp_path, tags=("x:1",), secrets={"s": tmp_path / "missing"}))
