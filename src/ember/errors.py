"""The one family of errors ember raises.

Library code raises these; only the CLI boundary turns them into a one-line
message and an exit code (see `ember.cli`). Each error reads as one sentence
and carries the data that explains it.
"""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class EmberError(Exception):
    """Base class: a message, an optional fix, and the exit code it maps to."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(EmberError):
    """The command line or its arguments were wrong."""

    exit_code = EXIT_USAGE


class SpecError(EmberError):
    """A build spec is invalid: names the file, the key path and what is allowed."""

    exit_code = EXIT_USAGE

    def __init__(
        self, message: str, *, file: str = "", key: str = "", hint: str | None = None
    ) -> None:
        where = file
        if key:
            where = f"{file}: `{key}`" if file else f"`{key}`"
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.file = file
        self.key = key


class ResolveError(EmberError):
    """The requested toolchain cannot work for the target (a refusal with a rule and a fix)."""

    exit_code = EXIT_USAGE


class EngineError(EmberError):
    """A container-engine command failed: carries the argv, exit code and the tail of its log."""

    def __init__(
        self,
        message: str,
        *,
        command: Sequence[str] = (),
        returncode: int | None = None,
        log_tail: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.command = list(command)
        self.returncode = returncode
        self.log_tail = log_tail


class EngineMissing(EngineError):
    """No container engine could be reached."""


class BuildFailed(EngineError):
    """An image build failed; the previous image keeps its tag."""
