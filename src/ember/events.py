"""The one event stream: what happened during a build or an engine operation.

Producers (the engine, base-image bootstrap, atomic tagging) call a sink,
`on_event(event)`, with small frozen dataclasses. Consumers are sinks:

* `PlainPrinter`: one line per step, for logs and non-terminals;
* `RichDisplay`: a live view of the running steps, per-stage times and cache hits;
* `LogFolder`: the full output (`build.log`), every event (`events.jsonl`)
  and the exact commands as a replayable shell script (`commands.sh`);
* `fan_out(a, b, ...)`: one sink that feeds several.

Sinks never raise into producers' control flow on purpose; the CLI chooses
which ones to use (`choose_sink` picks the display for a stream).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


@dataclass(frozen=True)
class CommandStarted:
    """ember is about to run a command (recorded so that a build can be replayed)."""

    argv: tuple[str, ...]
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()  # additions only; never secrets


@dataclass(frozen=True)
class BuildStarted:
    image: str
    backend: str = ""  # "buildx", "buildkit" or "classic"
    context: str = ""


@dataclass(frozen=True)
class StepStarted:
    id: str
    name: str
    stage: str | None = None


@dataclass(frozen=True)
class StepFinished:
    id: str
    name: str
    stage: str | None = None
    cached: bool = False
    seconds: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class LogLine:
    step_id: str | None
    text: str


@dataclass(frozen=True)
class Warn:
    """Something the user should know that does not stop the operation."""

    text: str


@dataclass(frozen=True)
class Tagged:
    image_id: str
    tag: str


@dataclass(frozen=True)
class BuildFinished:
    image: str
    seconds: float
    ok: bool
    image_id: str | None = None
    steps: int = 0
    cached: int = 0


Event = (
    CommandStarted
    | BuildStarted
    | StepStarted
    | StepFinished
    | LogLine
    | Warn
    | Tagged
    | BuildFinished
)
EventSink = Callable[[Event], None]


def null_sink(event: Event) -> None:
    """Drop every event."""


def fan_out(*sinks: EventSink | None) -> EventSink:
    """One sink that hands each event to every given sink, in order."""
    live = [s for s in sinks if s is not None]

    def _all(event: Event) -> None:
        for sink in live:
            sink(event)

    return _all


def event_to_dict(event: Event) -> dict[str, Any]:
    data = dataclasses.asdict(event)
    data["event"] = type(event).__name__
    return data


def short_name(name: str, limit: int = 80) -> str:
    name = " ".join(name.split())
    return name if len(name) <= limit else name[: limit - 3] + "..."


# ---------------------------------------------------------------- plain lines


class PlainPrinter:
    """One line per finished step (and errors, warnings, start/end), for non-terminals.

    `show_logs=True` also prints every log line (prefixed with the step).
    """

    def __init__(
        self, stream: IO[str], *, show_logs: bool = False, show_internal: bool = False
    ) -> None:
        self.stream = stream
        self.show_logs = show_logs
        self.show_internal = show_internal
        self._names: dict[str, str] = {}

    def __call__(self, event: Event) -> None:
        line = self._format(event)
        if line is not None:
            self.stream.write(line + "\n")
            self.stream.flush()

    def _format(self, event: Event) -> str | None:
        if isinstance(event, BuildStarted):
            return (
                f"build {event.image} ({event.backend})"
                if event.backend
                else f"build {event.image}"
            )
        if isinstance(event, StepStarted):
            self._names[event.id] = event.name
            return None
        if isinstance(event, StepFinished):
            if event.stage == "internal" and not self.show_internal and not event.error:
                return None
            if event.error:
                state = f"ERROR {event.error}"
            elif event.cached:
                state = "CACHED"
            else:
                state = f"{event.seconds:.1f}s"
            return f"  {short_name(event.name)}  {state}"
        if isinstance(event, LogLine):
            if not self.show_logs:
                return None
            return f"  | {event.text}"
        if isinstance(event, Warn):
            return f"warning: {event.text}"
        if isinstance(event, Tagged):
            return f"tagged {event.tag} ({event.image_id[:19]})"
        if isinstance(event, BuildFinished):
            verdict = "done" if event.ok else "FAILED"
            cached = f", {event.cached}/{event.steps} steps cached" if event.steps else ""
            return f"build {event.image} {verdict} in {event.seconds:.1f}s{cached}"
        return None


# ---------------------------------------------------------------- rich live view


@dataclass
class _StageTimes:
    seconds: float = 0.0
    steps: int = 0
    cached: int = 0


@dataclass
class _LiveState:
    image: str = ""
    started_at: float = field(default_factory=time.monotonic)
    running: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> (name, t0)
    stages: dict[str, _StageTimes] = field(default_factory=dict)
    last_log: str = ""
    done: list[str] = field(default_factory=list)


class RichDisplay:
    """A live terminal view: running steps with elapsed time, per-stage totals, cache hits.

    Use as a context manager around the operation; rich is imported lazily.
    Finished steps are printed above the live area, so the scrollback keeps them.
    """

    def __init__(self, console: Any = None, *, transient: bool = True) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = console if console is not None else Console(stderr=True)
        self.state = _LiveState()
        self._live = Live(
            console=self.console,
            transient=transient,
            refresh_per_second=8,
            get_renderable=self._render,
        )

    def __enter__(self) -> RichDisplay:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def __call__(self, event: Event) -> None:
        st = self.state
        if isinstance(event, BuildStarted):
            st.image = event.image
            st.started_at = time.monotonic()
        elif isinstance(event, StepStarted):
            st.running[event.id] = (event.name, time.monotonic())
        elif isinstance(event, StepFinished):
            st.running.pop(event.id, None)
            stage = st.stages.setdefault(event.stage or "-", _StageTimes())
            stage.seconds += event.seconds
            stage.steps += 1
            stage.cached += int(event.cached)
            if event.stage != "internal" or event.error:
                mark = (
                    "[red]ERROR[/]"
                    if event.error
                    else ("[dim]cached[/]" if event.cached else f"{event.seconds:.1f}s")
                )
                self.console.print(f"  {_escape(short_name(event.name))}  {mark}", highlight=False)
        elif isinstance(event, LogLine):
            st.last_log = event.text
        elif isinstance(event, Warn):
            self.console.print(f"[yellow]warning:[/] {_escape(event.text)}")
        elif isinstance(event, Tagged):
            self.console.print(f"tagged [bold]{_escape(event.tag)}[/]")
        elif isinstance(event, BuildFinished):
            total = sum(s.steps for s in st.stages.values())
            verdict = "[green]done[/]" if event.ok else "[red]FAILED[/]"
            self.console.print(
                f"build [bold]{_escape(event.image)}[/] {verdict} in {event.seconds:.1f}s"
                f" ({event.cached}/{event.steps or total} steps cached)"
            )
        self._live.refresh()

    def _render(self) -> Any:
        from rich.table import Table

        st = self.state
        now = time.monotonic()
        table = Table.grid(padding=(0, 2))
        table.add_column(justify="right", style="cyan", no_wrap=True)
        table.add_column(overflow="ellipsis", no_wrap=True)
        title = f"building {st.image}" if st.image else "building"
        table.add_row(f"{now - st.started_at:5.1f}s", f"[bold]{_escape(title)}[/]")
        for name, t0 in list(st.running.values())[-4:]:
            table.add_row(f"{now - t0:5.1f}s", _escape(short_name(name, 100)))
        if st.last_log:
            table.add_row("", f"[dim]{_escape(short_name(st.last_log, 100))}[/]")
        stages = [
            f"{k} {v.seconds:.0f}s ({v.cached}/{v.steps} cached)"
            for k, v in st.stages.items()
            if k not in ("internal", "-")
        ]
        if stages:
            table.add_row("", "[dim]" + _escape(" · ".join(stages)) + "[/]")
        return table


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


# ---------------------------------------------------------------- the log folder


class LogFolder:
    """Writes a build's record into `folder` (created if needed).

    * `build.log`: every log line and step result, as text, in order;
    * `events.jsonl`: every event, one JSON object per line;
    * `commands.sh`: the exact commands ember ran, shell-quoted, replayable.

    Secrets never reach this sink: build secrets travel as file paths in argv.
    Call `close()` (or use it as a context manager) when the operation ends.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._log = open(self.folder / "build.log", "a", encoding="utf-8")
        self._events = open(self.folder / "events.jsonl", "a", encoding="utf-8")
        commands = self.folder / "commands.sh"
        fresh = not commands.exists()
        self._commands = open(commands, "a", encoding="utf-8")
        if fresh:
            self._commands.write(
                "#!/bin/sh\n# The commands ember ran, in order (replayable).\nset -e\n"
            )
            commands.chmod(0o755)
        self._names: dict[str, str] = {}

    @property
    def log_path(self) -> Path:
        return self.folder / "build.log"

    @property
    def commands_path(self) -> Path:
        return self.folder / "commands.sh"

    def __enter__(self) -> LogFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for f in (self._log, self._events, self._commands):
            if not f.closed:
                f.close()

    def __call__(self, event: Event) -> None:
        self._events.write(json.dumps(event_to_dict(event), default=str) + "\n")
        self._events.flush()
        if isinstance(event, CommandStarted):
            self._commands.write(
                command_line(event.argv, cwd=event.cwd, env=dict(event.env)) + "\n"
            )
            self._commands.flush()
            self._log.write(f"$ {shlex.join(event.argv)}\n")
        elif isinstance(event, StepStarted):
            self._names[event.id] = event.name
            self._log.write(f"#{_short_id(event.id)} {event.name}\n")
        elif isinstance(event, LogLine):
            prefix = f"#{_short_id(event.step_id)} " if event.step_id else ""
            self._log.write(f"{prefix}{event.text}\n")
        elif isinstance(event, StepFinished):
            if event.error:
                state = f"ERROR {event.error}"
            elif event.cached:
                state = "CACHED"
            else:
                state = f"DONE {event.seconds:.1f}s"
            self._log.write(f"#{_short_id(event.id)} {state}\n")
        elif isinstance(event, Warn):
            self._log.write(f"warning: {event.text}\n")
        elif isinstance(event, BuildStarted):
            self._log.write(f"== build {event.image} ({event.backend})\n")
        elif isinstance(event, Tagged):
            self._log.write(f"== tagged {event.tag} {event.image_id}\n")
        elif isinstance(event, BuildFinished):
            verdict = "ok" if event.ok else "FAILED"
            self._log.write(f"== build {event.image} {verdict} in {event.seconds:.1f}s\n")
        self._log.flush()


def command_line(
    argv: Sequence[str], *, cwd: str | None = None, env: Mapping[str, str] | None = None
) -> str:
    """One replayable shell line: `(cd DIR && VAR=x argv...)`, every word quoted."""
    words = [f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()] + [
        shlex.quote(a) for a in argv
    ]
    line = " ".join(words)
    if cwd:
        return f"(cd {shlex.quote(cwd)} && {line})"
    return line


def _short_id(step_id: str | None) -> str:
    if not step_id:
        return "-"
    return step_id.removeprefix("sha256:")[:12]


def choose_sink(stream: IO[str], *, show_logs: bool = False) -> tuple[EventSink, Any]:
    """The display for `stream`: a RichDisplay on a terminal, else a PlainPrinter.

    Returns (sink, context manager); enter the context manager around the operation.
    """
    import contextlib

    if stream.isatty() and os.environ.get("TERM") != "dumb":
        from rich.console import Console

        display = RichDisplay(Console(file=stream))
        return display, display
    return PlainPrinter(stream, show_logs=show_logs), contextlib.nullcontext()
