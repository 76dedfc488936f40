"""The one place where ember runs other programs.

Every command is an argv list (never a shell string). Two ways to run one:

* `run(argv)` waits and captures stdout and stderr;
* `stream(argv, on_line)` hands each output line to a callback as it arrives
  and keeps only the last lines of each stream (long builds print a lot).

Both take environment additions (`env`, a value of None removes a variable),
a working directory and a timeout. A child runs in its own session, so a
Ctrl-C reaches ember alone; ember then stops the child (SIGINT, then SIGTERM,
then SIGKILL) and only then lets the KeyboardInterrupt propagate. Nothing
keeps running behind the user's back.

Failures raise `CommandError` (with `CommandNotFound` and `CommandTimeout`),
which carries the argv, the exit code and the tail of the output.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ember.errors import EmberError

#: How long a child gets to exit after each signal when ember stops it.
STOP_GRACE_SECONDS = (10.0, 5.0)
TAIL_LINES = 40

Env = Mapping[str, "str | None"]
LineCallback = Callable[[str, str], None]
"""Called as `on_line(stream, line)` with stream "stdout" or "stderr", line without newline."""


@dataclass(frozen=True)
class Completed:
    """A finished command. For `stream()`, stdout/stderr hold only their last lines."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        """Everything it printed: stdout, then stderr."""
        return self.stdout + self.stderr

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines of stderr, else of stdout: what explains a failure."""
        return tail_of(self.stderr or self.stdout, lines)


class CommandError(EmberError):
    """A command failed: names it, its exit code, and the end of what it printed."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        *,
        stdout: str = "",
        stderr: str = "",
        message: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        if message is None:
            last = last_line(stderr) or last_line(stdout)
            message = f"`{display(argv)}` exited with code {returncode}"
            if last:
                message += f": {last}"
        super().__init__(message, hint=hint)

    @property
    def output(self) -> str:
        """Everything it printed: stdout, then stderr."""
        return self.stdout + self.stderr

    def tail(self, lines: int = TAIL_LINES) -> str:
        return tail_of(self.stderr or self.stdout, lines)


class CommandNotFound(CommandError):
    """The program is not installed (or not on PATH)."""


class CommandTimeout(CommandError):
    """The command ran past its timeout and was stopped."""


def display(argv: Sequence[str], limit: int = 120) -> str:
    """An argv as a shell-quoted line, shortened for messages."""
    text = shlex.join(argv)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tail_of(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return ""


def which(program: str, extra_dirs: Sequence[str] = ("/usr/sbin", "/sbin")) -> str | None:
    """Where `program` is, looking on PATH and then in `extra_dirs` (sbin is often off PATH)."""
    import shutil

    found = shutil.which(program)
    if found:
        return found
    return shutil.which(program, path=os.pathsep.join(extra_dirs))


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Env | None = None,
    cwd: str | os.PathLike[str] | None = None,
    input: str | bytes | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> Completed:
    """Run argv to the end and capture its output (decoded as UTF-8, errors replaced)."""
    out = _Collector(keep_all=True)
    err = _Collector(keep_all=True)
    return _execute(
        argv, env=env, cwd=cwd, input=input, timeout=timeout, check=check, out=out, err=err
    )


def stream(
    argv: Sequence[str | os.PathLike[str]],
    on_line: LineCallback,
    *,
    env: Env | None = None,
    cwd: str | os.PathLike[str] | None = None,
    input: str | bytes | None = None,
    timeout: float | None = None,
    check: bool = True,
    keep_lines: int = 400,
    raw_log: IO[bytes] | None = None,
) -> Completed:
    """Run argv, calling `on_line(stream, line)` for each line as it comes.

    Keeps the last `keep_lines` lines of each stream for the result and for
    errors. `raw_log`, when given, receives every byte exactly as printed.
    """
    out = _Collector(
        keep_all=False, keep_lines=keep_lines, on_line=on_line, name="stdout", raw=raw_log
    )
    err = _Collector(
        keep_all=False, keep_lines=keep_lines, on_line=on_line, name="stderr", raw=raw_log
    )
    return _execute(
        argv, env=env, cwd=cwd, input=input, timeout=timeout, check=check, out=out, err=err
    )


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold back Ctrl-C while a short cleanup runs; deliver it afterwards.

    Only works in the main thread (elsewhere it does nothing).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def _hold(signum: int, frame: object) -> None:
        pending.append(signum)

    previous = signal.signal(signal.SIGINT, _hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


# ---------------------------------------------------------------- internals


class _Collector:
    """Splits one stream's bytes into lines; keeps all of it, or only its tail."""

    def __init__(
        self,
        *,
        keep_all: bool,
        keep_lines: int = 400,
        on_line: LineCallback | None = None,
        name: str = "",
        raw: IO[bytes] | None = None,
    ) -> None:
        self.keep_all = keep_all
        self.chunks: list[bytes] = []
        self.lines: deque[str] = deque(maxlen=keep_lines)
        self.on_line = on_line
        self.name = name
        self.raw = raw
        self.pending = b""

    def feed(self, data: bytes) -> None:
        if self.raw is not None:
            self.raw.write(data)
        if self.keep_all:
            self.chunks.append(data)
            return
        self.pending += data
        *complete, self.pending = self.pending.split(b"\n")
        for raw_line in complete:
            self._line(raw_line)

    def close(self) -> None:
        if not self.keep_all and self.pending:
            self._line(self.pending)
            self.pending = b""

    def _line(self, raw_line: bytes) -> None:
        line = raw_line.decode("utf-8", errors="replace").rstrip("\r")
        self.lines.append(line)
        if self.on_line is not None:
            self.on_line(self.name, line)

    def text(self) -> str:
        if self.keep_all:
            return b"".join(self.chunks).decode("utf-8", errors="replace")
        return "\n".join(self.lines) + ("\n" if self.lines else "")


def _environment(env: Env | None) -> dict[str, str] | None:
    if not env:
        return None
    merged = dict(os.environ)
    for key, value in env.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _execute(
    argv_in: Sequence[str | os.PathLike[str]],
    *,
    env: Env | None,
    cwd: str | os.PathLike[str] | None,
    input: str | bytes | None,
    timeout: float | None,
    check: bool,
    out: _Collector,
    err: _Collector,
) -> Completed:
    argv = tuple(os.fspath(a) for a in argv_in)
    if not argv:
        raise ValueError("empty argv")
    data = input.encode() if isinstance(input, str) else input
    started = time.monotonic()
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_environment(env),
            cwd=cwd,
            start_new_session=True,  # Ctrl-C reaches ember only; ember stops the child
        )
    except FileNotFoundError as exc:
        missing = argv[0] if exc.filename in (None, argv[0]) else exc.filename
        if cwd is not None and not Path(cwd).is_dir():
            raise CommandError(
                argv, None, message=f"working directory `{cwd}` does not exist"
            ) from exc
        raise CommandNotFound(
            argv, None, message=f"`{Path(str(missing)).name}` is not installed (not found on PATH)"
        ) from exc
    except PermissionError as exc:
        raise CommandError(
            argv, None, message=f"cannot execute `{argv[0]}`: {exc.strerror}"
        ) from exc

    deadline = None if timeout is None else started + timeout
    try:
        _pump(child, data, out, err, deadline)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            returncode = child.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            raise _Timeout from None
    except _Timeout:
        _stop(child)
        out.close()
        err.close()
        raise CommandTimeout(
            argv,
            child.returncode,
            stdout=out.text(),
            stderr=err.text(),
            message=f"`{display(argv)}` ran past its timeout of {timeout:g}s and was stopped",
        ) from None
    except BaseException:  # KeyboardInterrupt above all: stop the child, then propagate
        _stop(child)
        raise
    out.close()
    err.close()
    result = Completed(argv, returncode, out.text(), err.text(), time.monotonic() - started)
    if check and returncode != 0:
        raise CommandError(argv, returncode, stdout=result.stdout, stderr=result.stderr)
    return result


class _Timeout(Exception):
    pass


def _pump(
    child: subprocess.Popen[bytes],
    data: bytes | None,
    out: _Collector,
    err: _Collector,
    deadline: float | None,
) -> None:
    """Feed stdin and drain stdout/stderr without threads, until both close."""
    assert child.stdout is not None and child.stderr is not None
    with selectors.DefaultSelector() as sel:
        sel.register(child.stdout, selectors.EVENT_READ, out)
        sel.register(child.stderr, selectors.EVENT_READ, err)
        view = memoryview(data) if data is not None else None
        if child.stdin is not None:
            if view is not None and len(view):
                os.set_blocking(child.stdin.fileno(), False)
                sel.register(child.stdin, selectors.EVENT_WRITE, None)
            else:
                child.stdin.close()
        while sel.get_map():
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise _Timeout
            for key, _ in sel.select(wait):
                if key.data is None:  # stdin is writable
                    assert view is not None and child.stdin is not None
                    try:
                        written = os.write(key.fd, view[:65536])
                    except BrokenPipeError:
                        written = len(view)
                    view = view[written:]
                    if not len(view):
                        sel.unregister(key.fileobj)
                        child.stdin.close()
                    continue
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]
                    continue
                key.data.feed(chunk)


def _stop(child: subprocess.Popen[bytes]) -> None:
    """SIGINT, then SIGTERM, then SIGKILL, each after a grace period; always reaps."""
    for sig, grace in (
        (signal.SIGINT, STOP_GRACE_SECONDS[0]),
        (signal.SIGTERM, STOP_GRACE_SECONDS[1]),
    ):
        if child.poll() is not None:
            break
        try:
            child.send_signal(sig)
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting politely
            break
    if child.poll() is None:
        child.kill()
        child.wait()
    for pipe in (child.stdin, child.stdout, child.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
