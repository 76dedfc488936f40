"""The event stream's sinks, and atomic tagging over a fake engine (no engine needed)."""

from __future__ import annotations

import io
import json
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from ember.engine import BuildRequest, BuildResult, atomic_build, remove_temp_tags
from ember.engine.atomic import is_temp_tag, repository_of, temp_tag
from ember.engine.interface import ImageInfo
from ember.errors import BuildFailed
from ember.events import (
    BuildFinished,
    BuildStarted,
    CommandStarted,
    Event,
    LogFolder,
    LogLine,
    PlainPrinter,
    RichDisplay,
    StepFinished,
    StepStarted,
    Tagged,
    Warn,
    command_line,
    fan_out,
)

BUILD: list[Event] = [
    CommandStarted(
        ("docker", "buildx", "build", "--secret", "id=cacert,src=/etc/ssl/x y.crt", "."),
        env=(("DOCKER_HOST", "unix:///tmp/d.sock"),),
    ),
    BuildStarted("ember/app:1", "buildx"),
    StepStarted("d1", "[internal] load build definition from Dockerfile", "internal"),
    StepFinished("d1", "[internal] load build definition from Dockerfile", "internal", False, 0.01),
    StepStarted("d2", "[builder 2/3] RUN make", "builder"),
    LogLine("d2", "compiling"),
    StepFinished("d2", "[builder 2/3] RUN make", "builder", False, 12.34),
    StepStarted("d3", "[runtime 2/2] COPY --from=builder /a /a", "runtime"),
    StepFinished("d3", "[runtime 2/2] COPY --from=builder /a /a", "runtime", True, 0.0),
    Warn("odd"),
    Tagged("sha256:" + "a" * 64, "ember/app:1"),
    BuildFinished("ember/app:1", 13.0, True, "sha256:" + "a" * 64, steps=2, cached=1),
]


def test_plain_printer_exact_output() -> None:
    out = io.StringIO()
    sink = PlainPrinter(out)
    for event in BUILD:
        sink(event)
    assert out.getvalue() == (
        "build ember/app:1 (buildx)\n"
        "  [builder 2/3] RUN make  12.3s\n"
        "  [runtime 2/2] COPY --from=builder /a /a  CACHED\n"
        "warning: odd\n"
        "tagged ember/app:1 (sha256:aaaaaaaaaaaa)\n"
        "build ember/app:1 done in 13.0s, 1/2 steps cached\n"
    )
    logs = io.StringIO()
    verbose = PlainPrinter(logs, show_logs=True)
    for event in BUILD:
        verbose(event)
    assert "  | compiling\n" in logs.getvalue()


def test_log_folder_writes_log_events_and_a_replayable_script(tmp_path: Path) -> None:
    with LogFolder(tmp_path / "b1") as folder:
        fan_out(folder, None)(BUILD[0])
        for event in BUILD[1:]:
            folder(event)
    log = (tmp_path / "b1" / "build.log").read_text()
    assert "#d2 [builder 2/3] RUN make\n#d2 compiling\n#d2 DONE 12.3s\n" in log
    assert "#d3 CACHED" in log
    events = [
        json.loads(line) for line in (tmp_path / "b1" / "events.jsonl").read_text().splitlines()
    ]
    assert [e["event"] for e in events] == [type(e).__name__ for e in BUILD]
    script = (tmp_path / "b1" / "commands.sh").read_text().splitlines()
    assert script[0] == "#!/bin/sh"
    replay = script[-1]
    assert replay == (
        "DOCKER_HOST=unix:///tmp/d.sock docker buildx build --secret "
        "'id=cacert,src=/etc/ssl/x y.crt' ."
    )
    assert shlex.split(replay)[1:] == list(BUILD[0].argv)


def test_command_line_quotes_and_cd() -> None:
    assert command_line(["echo", "a b"], cwd="/tmp/x y") == "(cd '/tmp/x y' && echo 'a b')"
    line = command_line(["sh", "-c", "echo $X"], env={"X": "1 2"})
    assert subprocess.run(["sh", "-c", line], capture_output=True, text=True).stdout == "1 2\n"


def test_rich_display_renders_without_a_terminal() -> None:
    from rich.console import Console

    out = io.StringIO()
    with RichDisplay(Console(file=out, width=100, force_terminal=False)) as display:
        for event in BUILD:
            display(event)
    text = out.getvalue()
    assert "[builder 2/3] RUN make" in text and "cached" in text
    assert "ember/app:1" in text


class FakeEngine:
    """Just enough of an Engine for atomic tagging: images are a dict tag -> id."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.tags: dict[str, str] = {"ember/app:1": "sha256:old"}
        self.fail = fail
        self.calls: list[tuple[str, ...]] = []

    def build(self, request: BuildRequest, on_event: Any = None) -> BuildResult:
        self.calls.append(("build", *request.tags))
        if self.fail is not None:
            raise self.fail
        for tag in request.tags:
            self.tags[tag] = "sha256:new"
        return BuildResult("sha256:new", request.tags, 1.0)

    def tag(self, src: str, dst: str) -> None:
        self.calls.append(("tag", src, dst))
        self.tags[dst] = self.tags[src]

    def remove_image(self, ref: str, *, force: bool = False, missing_ok: bool = True) -> bool:
        self.calls.append(("rm", ref))
        return self.tags.pop(ref, None) is not None

    def list_images(
        self, reference: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[ImageInfo]:
        by_id: dict[str, list[str]] = {}
        for tag, image_id in self.tags.items():
            by_id.setdefault(image_id, []).append(tag)
        return [ImageInfo(i, tuple(t), 0, {}, None) for i, t in by_id.items()]


def test_atomic_build_moves_tags_only_on_success() -> None:
    fake = FakeEngine()
    seen: list[Event] = []
    result = atomic_build(
        fake,
        BuildRequest(Path("."), tags=("ember/app:1",)),
        ["ember/app:1", "ember/app:latest"],
        seen.append,
    )  # type: ignore[arg-type]
    tmp = fake.calls[0][1]
    assert is_temp_tag(tmp) and repository_of(tmp) == "ember/app"
    assert fake.calls[1:] == [
        ("tag", tmp, "ember/app:1"),
        ("tag", tmp, "ember/app:latest"),
        ("rm", tmp),
    ]
    assert fake.tags == {"ember/app:1": "sha256:new", "ember/app:latest": "sha256:new"}
    assert result.tags == ("ember/app:1", "ember/app:latest")
    assert [e.tag for e in seen if isinstance(e, Tagged)] == ["ember/app:1", "ember/app:latest"]


@pytest.mark.parametrize("error", [BuildFailed("boom"), KeyboardInterrupt()])
def test_atomic_build_failure_keeps_the_old_tag(error: BaseException) -> None:
    fake = FakeEngine(fail=error)
    with pytest.raises(type(error)):
        atomic_build(fake, BuildRequest(Path("."), tags=("ember/app:1",)))  # type: ignore[arg-type]
    assert fake.tags == {"ember/app:1": "sha256:old"}
    assert fake.calls[-1][0] == "rm" and is_temp_tag(fake.calls[-1][1])


def test_temp_tag_names() -> None:
    assert repository_of("localhost:5000/a/b:tag") == "localhost:5000/a/b"
    assert repository_of("localhost:5000/a/b") == "localhost:5000/a/b"
    assert repository_of("a/b:1@sha256:abc") == "a/b"
    tag = temp_tag("localhost:5000/a/b:tag")
    assert tag.startswith("localhost:5000/a/b:ember-tmp-") and is_temp_tag(tag)
    assert not is_temp_tag("a/b:ember-tmpx") and not is_temp_tag("ember-tmp-x/a:1")


def test_remove_temp_tags_sweeps_leftovers() -> None:
    fake = FakeEngine()
    fake.tags["ember/app:ember-tmp-123"] = "sha256:x"
    fake.tags["other/app:ember-tmp-456"] = "sha256:y"
    assert remove_temp_tags(fake, "ember/app") == ["ember/app:ember-tmp-123"]  # type: ignore[arg-type]
    assert remove_temp_tags(fake) == ["other/app:ember-tmp-456"]  # type: ignore[arg-type]
    assert fake.tags == {"ember/app:1": "sha256:old"}


def test_build_request_is_frozen_and_normalised(tmp_path: Path) -> None:
    req = BuildRequest(
        str(tmp_path), tags="a:1", secrets={"cacert": "/etc/ssl/certs/ca-certificates.crt"}
    )  # type: ignore[arg-type]
    assert req.tags == ("a:1",)
    assert req.dockerfile_path == tmp_path / "Dockerfile"
    assert req.secrets["cacert"] == Path("/etc/ssl/certs/ca-certificates.crt")
    assert req.network == "host"
    with pytest.raises(TypeError):
        req.build_args["X"] = "1"  # type: ignore[index]
    with pytest.raises(ValueError, match="secret id"):
        BuildRequest(tmp_path, secrets={"bad id": tmp_path})
