"""Builder progress -> events, from output recorded with buildx 0.13.1 / Docker 20.10 (no engine)."""

from __future__ import annotations

import base64
import json

from ember.engine.progress import (
    ClassicProgress,
    PlainProgress,
    RawJsonProgress,
    parse_time,
    stage_of,
)
from ember.events import Event, LogLine, StepFinished, StepStarted, Warn

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def rawjson(*statuses: dict) -> list[str]:
    """What buildx prints on stderr: pretty-printed objects, then plain text."""
    lines: list[str] = []
    for status in statuses:
        lines += json.dumps(status, indent=2).splitlines()
    return lines


def feed(parser, lines: list[str], stream: str = "stderr") -> None:
    for line in lines:
        parser.feed(stream, line)
    parser.finish_stream()


def test_stage_of() -> None:
    assert stage_of("[builder 2/3] RUN make") == "builder"
    assert stage_of("[stage-1 3/3] RUN echo done") == "stage-1"
    assert stage_of("[internal] load build definition from Dockerfile") == "internal"
    assert stage_of("[2/3] RUN echo") is None
    assert stage_of("exporting to image") is None


def test_parse_time_keeps_microseconds_of_nanosecond_stamps() -> None:
    t0 = parse_time("2026-12-03T21:33:30.376269427Z")
    t1 = parse_time("2026-12-03T21:33:30.572329392Z")
    assert t0 is not None and t1 is not None
    assert round((t1 - t0).total_seconds(), 3) == 0.196
    assert parse_time("2026-12-03T21:33:30Z") is not None
    assert parse_time(None) is None and parse_time("garbage") is None


def test_rawjson_steps_logs_cache_and_failure() -> None:
    events: list[Event] = []
    parser = RawJsonProgress(events.append)
    run = "[builder 2/3] RUN echo hi"
    lines = [*rawjson(
        {"vertexes": [{"digest": D1, "name": "[internal] load .dockerignore"}]},
        {"vertexes": [{"digest": D1, "name": "[internal] load .dockerignore",
                       "started": "2026-01-01T00:00:00.000000001Z",
                       "completed": "2026-01-01T00:00:00.5Z"}]},
        {"vertexes": [{"digest": D2, "name": "[builder 1/3] FROM base", "cached": True,
                       "started": "2026-01-01T00:00:01Z", "completed": "2026-01-01T00:00:01Z"}]},
        {"vertexes": [{"digest": D3, "name": run, "started": "2026-01-01T00:00:01Z"}]},
        {"logs": [{"vertex": D3, "stream": 1, "data": b64("hi\nparti")}]},
        {"logs": [{"vertex": D3, "stream": 2, "data": b64("al line\n")}]},
        {"vertexes": [{"digest": D3, "name": run, "started": "2026-01-01T00:00:01Z",
                       "completed": "2026-01-01T00:00:03.25Z",
                       "error": "process \"/bin/sh -c echo hi\" did not complete successfully: exit code: 3"}]},
        {"warnings": [{"vertex": D3, "level": 1, "short": b64("something odd")}]},
    ), "ERROR: failed to solve: process \"/bin/sh -c echo hi\" did not complete successfully: exit code: 3"]  # fmt: skip
    feed(parser, lines)

    started = [e for e in events if isinstance(e, StepStarted)]
    finished = [e for e in events if isinstance(e, StepFinished)]
    assert [e.name for e in started] == [
        "[internal] load .dockerignore",
        "[builder 1/3] FROM base",
        run,
    ]
    assert [(e.stage, e.cached, e.error is not None) for e in finished] == [
        ("internal", False, False),
        ("builder", True, False),
        ("builder", False, True),
    ]
    assert finished[0].seconds == 0.5
    assert finished[2].seconds == 2.25
    assert [e.text for e in events if isinstance(e, LogLine) and e.step_id == D3] == [
        "hi",
        "partial line",
    ]
    assert any(isinstance(e, Warn) and e.text == "something odd" for e in events)
    assert (parser.steps, parser.cached) == (2, 1)  # [internal] steps are not counted
    failure = parser.failure()
    assert failure.step == run
    assert "exit code: 3" in failure.error
    assert failure.tail.splitlines()[:2] == ["hi", "partial line"]
    assert failure.tail.splitlines()[-1].startswith("ERROR: failed to solve")


def test_rawjson_vertex_seen_only_completed_still_starts_once() -> None:
    events: list[Event] = []
    parser = RawJsonProgress(events.append)
    done = {"digest": D1, "name": "[a 1/1] RUN x", "cached": True,
            "started": "2026-01-01T00:00:00Z", "completed": "2026-01-01T00:00:00Z"}  # fmt: skip
    feed(parser, rawjson({"vertexes": [done]}, {"vertexes": [done]}))
    assert [type(e).__name__ for e in events] == ["StepStarted", "StepFinished"]


def test_rawjson_cancelled_step_is_not_the_failure() -> None:
    parser = RawJsonProgress(lambda e: None)
    feed(parser, rawjson({"vertexes": [{"digest": D1, "name": "[a 1/1] RUN sleep 60",
        "started": "2026-01-01T00:00:00Z", "completed": "2026-01-01T00:00:09Z",
        "error": "context canceled"}]}))  # fmt: skip
    assert parser.failure().step is None


PLAIN = """\
#1 [internal] load build definition from Dockerfile
#1 sha256:dd362d5a50517e55dd0e19fccf499ebe69a2760fcea734b5420ba7a6263e6a49
#1 transferring dockerfile: 312B done
#1 DONE 0.0s

#4 [1/3] FROM docker.io/scratch-exp/debian:bookworm
#4 sha256:f33015118b0b4bb5f0a2422913f8fa724544ceea3e138b3297bf4e7200e99e04
#4 DONE 0.0s

#5 [2/3] RUN echo line-one && echo to-stderr >&2
#5 sha256:d0eecc59009e59558c4f05832032a9fa93bfc4b4b4056c8992787b833e59dea0
#5 CACHED

#6 [3/3] RUN echo about to fail; exit 3
#6 sha256:e4b58a20631a38d7be63b14b5de15a404552460b40eb8f03e576041b8ebe7ccc
#6 0.068 about to fail
#6 ERROR: executor failed running [/bin/sh -c echo about to fail; exit 3]: exit code: 3
------
 > [3/3] RUN echo about to fail; exit 3:
------
executor failed running [/bin/sh -c echo about to fail; exit 3]: exit code: 3
"""


def test_plain_progress() -> None:
    events: list[Event] = []
    parser = PlainProgress(events.append)
    feed(parser, PLAIN.splitlines())
    finished = [e for e in events if isinstance(e, StepFinished)]
    assert [(e.id, e.cached, bool(e.error)) for e in finished] == [
        ("#1", False, False),
        ("#4", False, False),
        ("#5", True, False),
        ("#6", False, True),
    ]
    assert [e.text for e in events if isinstance(e, LogLine) and e.step_id == "#6"] == [
        "about to fail"
    ]
    assert (parser.steps, parser.cached) == (3, 1)
    failure = parser.failure()
    assert failure.step == "[3/3] RUN echo about to fail; exit 3"
    assert failure.error.startswith("executor failed running")
    assert "about to fail" in failure.tail


CLASSIC = """\
DEPRECATED: The legacy builder is deprecated and will be removed in a future release.
Sending build context to Docker daemon   29.7kB
Step 1/3 : FROM scratch-exp/debian:bookworm AS builder
 ---> 88cf357378c4
Step 2/3 : RUN echo line-one && echo to-stderr >&2
 ---> Using cache
 ---> a5724550d5ef
Step 3/3 : RUN echo about to fail; exit 3
 ---> Running in fbf53f904a6e
about to fail
\x1b[91mto-stderr
\x1b[0mThe command '/bin/sh -c echo about to fail; exit 3' returned a non-zero code: 3
"""


def test_classic_progress() -> None:
    events: list[Event] = []
    parser = ClassicProgress(events.append)
    feed(parser, CLASSIC.splitlines(), stream="stdout")
    finished = [e for e in events if isinstance(e, StepFinished)]
    assert [(e.name, e.cached, bool(e.error)) for e in finished] == [
        ("[builder 1/3] FROM scratch-exp/debian:bookworm AS builder", False, False),
        ("[builder 2/3] RUN echo line-one && echo to-stderr >&2", True, False),
        ("[builder 3/3] RUN echo about to fail; exit 3", False, True),
    ]
    assert [e.text for e in events if isinstance(e, LogLine) and e.step_id == "step-3"] == [
        "about to fail",
        "to-stderr",
    ]
    assert parser.failure().tail.splitlines()[:2] == ["about to fail", "to-stderr"]
