"""Turn a builder's progress output into events (pure: lines in, events out).

Three formats, best first:

* `RawJsonProgress`: `buildx build --progress=rawjson` (buildx >= 0.12). BuildKit's
  own status objects, pretty-printed JSON on stderr: vertexes with `digest`,
  `name`, `started`, `completed`, `cached`, `error`; logs as base64 `data`.
* `PlainProgress`: `--progress=plain` of BuildKit (`#5 [builder 2/3] RUN ...`,
  `#5 0.068 output`, `#5 DONE 0.2s`, `#5 CACHED`, `#5 ERROR: ...`).
* `ClassicProgress`: the legacy builder (`Step 2/3 : RUN ...`, ` ---> Using cache`).

Each parser is fed `(stream, line)` pairs, calls `on_event`, counts steps and
cache hits, and remembers what explains a failure (`failure()`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ember.events import EventSink, LogLine, StepFinished, StepStarted, Warn

_STAGE = re.compile(r"^\[(?:\d+/\d+|(?P<stage>[^\]\s]+)(?: \d+/\d+)?)\]")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STEP_TAIL_LINES = 60


def stage_of(name: str) -> str | None:
    """`[builder 2/3] RUN x` -> "builder"; `[internal] load ...` -> "internal"; `[1/3] ..` -> None."""
    m = _STAGE.match(name)
    if m is None:
        return None
    return m.group("stage")


def parse_time(stamp: str | None) -> datetime | None:
    """RFC 3339 with nanoseconds (as BuildKit writes it) -> datetime."""
    if not stamp:
        return None
    s = stamp.replace("Z", "+00:00")
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", s)
    if m is None:
        return None
    frac = (m.group(2) or ".0")[:7]
    try:
        return datetime.fromisoformat(m.group(1) + frac + m.group(3))
    except ValueError:
        return None


@dataclass(frozen=True)
class Failure:
    step: str | None  # the name of the step that failed, when known
    error: str  # the builder's own error message
    tail: str  # the last log lines of that step, then the builder's final words


class _Tracker:
    """Step bookkeeping shared by the parsers."""

    def __init__(self, on_event: EventSink) -> None:
        self.on_event = on_event
        self.names: dict[str, str] = {}
        self.started: set[str] = set()
        self.finished: set[str] = set()
        self.step_logs: dict[str, deque[str]] = {}
        self.text: deque[str] = deque(maxlen=STEP_TAIL_LINES)
        self.steps = 0
        self.cached = 0
        self.failed_step: str | None = None
        self.error: str | None = None

    def start(self, step_id: str, name: str) -> None:
        self.names.setdefault(step_id, name)
        if step_id in self.started:
            return
        self.started.add(step_id)
        self.on_event(StepStarted(step_id, name, stage_of(name)))

    def finish(
        self, step_id: str, *, cached: bool = False, seconds: float = 0.0, error: str | None = None
    ) -> None:
        if step_id in self.finished:
            return
        name = self.names.get(step_id, step_id)
        self.start(step_id, name)
        self.finished.add(step_id)
        stage = stage_of(name)
        if stage != "internal":
            self.steps += 1
            self.cached += int(cached)
        if error and self.failed_step is None and not _is_cancel(error):
            self.failed_step = name
            self.error = error
            self._failed_id = step_id
        self.on_event(StepFinished(step_id, name, stage, cached, max(seconds, 0.0), error))

    def log(self, step_id: str | None, line: str) -> None:
        if step_id is None:
            self.text.append(line)
        else:
            self.step_logs.setdefault(step_id, deque(maxlen=STEP_TAIL_LINES)).append(line)
        self.on_event(LogLine(step_id, line))

    def open_steps(self) -> list[str]:
        return [s for s in self.started if s not in self.finished]

    def failure(self) -> Failure:
        parts: list[str] = []
        failed_id = getattr(self, "_failed_id", None)
        if failed_id is not None:
            parts.extend(self.step_logs.get(failed_id, ()))
        parts.extend(line for line in self.text if line.strip())
        error = self.error or next((t for t in reversed(self.text) if t.strip()), "")
        return Failure(self.failed_step, error, "\n".join(parts[-STEP_TAIL_LINES:]))


def _is_cancel(error: str) -> bool:
    return "context canceled" in error or error.strip().upper() == "CANCELED"


class RawJsonProgress(_Tracker):
    """`--progress=rawjson`: a stream of pretty-printed JSON SolveStatus objects."""

    def __init__(self, on_event: EventSink) -> None:
        super().__init__(on_event)
        self._obj: list[str] | None = None
        self._partial: dict[str, str] = {}

    def feed(self, stream: str, line: str) -> None:
        if self._obj is None:
            if line == "{":
                self._obj = [line]
            elif line.strip():
                self.log(None, line)  # e.g. the final "ERROR: failed to solve: ..."
            return
        self._obj.append(line)
        if line == "}":
            text = "\n".join(self._obj)
            self._obj = None
            try:
                status = json.loads(text)
            except json.JSONDecodeError:
                for raw in text.splitlines():
                    self.log(None, raw)
                return
            self.handle(status)

    def handle(self, status: dict[str, Any]) -> None:
        for v in status.get("vertexes") or ():
            digest = v.get("digest")
            if not digest:
                continue
            name = v.get("name") or digest
            self.names[digest] = name
            if v.get("started"):
                self.start(digest, name)
            if v.get("completed"):
                t0, t1 = parse_time(v.get("started")), parse_time(v.get("completed"))
                seconds = (t1 - t0).total_seconds() if t0 and t1 else 0.0
                self._flush_partial(digest)
                self.finish(
                    digest,
                    cached=bool(v.get("cached")),
                    seconds=seconds,
                    error=v.get("error") or None,
                )
        for entry in status.get("logs") or ():
            digest = entry.get("vertex")
            try:
                data = base64.b64decode(entry.get("data") or "").decode("utf-8", errors="replace")
            except (binascii.Error, ValueError):
                continue
            text = self._partial.pop(digest, "") + data
            *lines, rest = text.split("\n")
            if rest:
                self._partial[digest] = rest
            for line in lines:
                self.log(digest, line.rstrip("\r"))
        for warning in status.get("warnings") or ():
            short = warning.get("short") or ""
            try:
                text = base64.b64decode(short).decode("utf-8", errors="replace")
            except (binascii.Error, ValueError):
                text = str(short)
            if text:
                self.on_event(Warn(text))

    def _flush_partial(self, digest: str) -> None:
        rest = self._partial.pop(digest, "")
        if rest:
            self.log(digest, rest.rstrip("\r"))

    def finish_stream(self) -> None:
        for digest in list(self._partial):
            self._flush_partial(digest)


_PLAIN = re.compile(r"^#(\d+) (.*)$")
_PLAIN_LOG = re.compile(r"^(\d+\.\d+) (.*)$")
_PLAIN_DONE = re.compile(r"^DONE (\d+(?:\.\d+)?)s$")


class PlainProgress(_Tracker):
    """BuildKit's `--progress=plain` text."""

    def feed(self, stream: str, line: str) -> None:
        m = _PLAIN.match(line)
        if m is None:
            if line.strip():
                self.log(None, line)
            return
        step_id, rest = f"#{m.group(1)}", m.group(2)
        if step_id not in self.names:
            self.start(step_id, rest)
            return
        done = _PLAIN_DONE.match(rest)
        if done:
            self.finish(step_id, seconds=float(done.group(1)))
        elif rest == "CACHED":
            self.finish(step_id, cached=True)
        elif rest.startswith("ERROR"):
            self.finish(step_id, error=rest.removeprefix("ERROR").lstrip(": ") or "failed")
        elif rest == "CANCELED":
            self.finish(step_id, error="CANCELED")
        elif (log := _PLAIN_LOG.match(rest)) is not None:
            self.log(step_id, log.group(2))
        # else: a status line ("sha256:...", "transferring context: 2B done", the name again)

    def finish_stream(self) -> None:
        pass


_CLASSIC_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_CLASSIC_FROM = re.compile(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?", re.IGNORECASE)
_CLASSIC_FAIL = re.compile(r"^The command .* returned a non-zero code: \d+$")
_CLASSIC_NOISE = re.compile(
    r"^( ---> |Removing intermediate container |Sending build context |Successfully tagged )"
)


class ClassicProgress(_Tracker):
    """The legacy builder's text (`DOCKER_BUILDKIT=0 docker build`)."""

    def __init__(self, on_event: EventSink) -> None:
        super().__init__(on_event)
        self._current: str | None = None
        self._t0 = 0.0
        self._cached = False
        self._stage: str | None = None
        self._stages = 0

    def _close(self, error: str | None = None) -> None:
        if self._current is not None:
            self.finish(
                self._current,
                cached=self._cached,
                seconds=time.monotonic() - self._t0,
                error=error,
            )
            self._current = None

    def feed(self, stream: str, line: str) -> None:
        line = _ANSI.sub("", line)
        m = _CLASSIC_STEP.match(line)
        if m is not None:
            self._close()
            n, total, instruction = m.groups()
            frm = _CLASSIC_FROM.match(instruction)
            if frm is not None:
                self._stage = frm.group(1) or f"stage-{self._stages}"
                self._stages += 1
            self._current = f"step-{n}"
            self._t0 = time.monotonic()
            self._cached = False
            self.start(self._current, f"[{self._stage} {n}/{total}] {instruction}")
            return
        if line == " ---> Using cache":
            self._cached = True
            return
        if _CLASSIC_FAIL.match(line):
            self._close(error=line)
            return
        if line.startswith("Successfully built "):
            self._close()
            return
        if _CLASSIC_NOISE.match(line) or not line.strip():
            return
        self.log(self._current, line)

    def finish_stream(self) -> None:
        self._close()


ProgressParser = RawJsonProgress | PlainProgress | ClassicProgress
