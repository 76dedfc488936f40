"""Parsing and comparing CUDA toolkit and NVIDIA driver versions.

Pure syntax: what a version *means* lives in the TOML tables under
`ember/compat/data/`. Malformed input raises `ResolveError` with a sentence
that says what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ember.errors import ResolveError

_CUDA_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")
_DRIVER_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")
_BRANCH_RE = re.compile(r"^[Rr]?(\d+)$")


@dataclass(frozen=True)
class CudaVersion:
    """A CUDA toolkit version: "11.4" (any 11.4 release) or "11.4.4" (one release)."""

    major: int
    minor: int
    patch: int | None = None

    @property
    def minor_key(self) -> tuple[int, int]:
        """(major, minor): the key of the toolkit row this version belongs to."""
        return (self.major, self.minor)

    @property
    def family(self) -> str:
        """The "major.minor" text of the toolkit row, e.g. "11.4"."""
        return f"{self.major}.{self.minor}"

    def __str__(self) -> str:
        if self.patch is None:
            return self.family
        return f"{self.family}.{self.patch}"

    def at_most(self, bound: CudaVersion) -> bool:
        """True if this version can be at or below `bound` (inclusive).

        A bound without a patch covers every release of its minor ("11.5" covers
        11.5.2). A version without a patch is counted as matching a patch-level
        bound of its own minor, since it may stand for that release.
        """
        if self.minor_key != bound.minor_key:
            return self.minor_key < bound.minor_key
        if bound.patch is None or self.patch is None:
            return True
        return self.patch <= bound.patch

    def at_least(self, bound: CudaVersion) -> bool:
        """True if this version can be at or above `bound` (inclusive); see `at_most`."""
        if self.minor_key != bound.minor_key:
            return self.minor_key > bound.minor_key
        if bound.patch is None or self.patch is None:
            return True
        return self.patch >= bound.patch


@dataclass(frozen=True)
class DriverVersion:
    """An NVIDIA Linux driver version such as "470.256.02" (kept as written)."""

    text: str
    parts: tuple[int, int, int]

    @property
    def branch(self) -> int:
        """The driver branch: 470 for "470.256.02"."""
        return self.parts[0]

    def __str__(self) -> str:
        return self.text

    def __lt__(self, other: DriverVersion) -> bool:
        return self.parts < other.parts

    def __le__(self, other: DriverVersion) -> bool:
        return self.parts <= other.parts

    def __gt__(self, other: DriverVersion) -> bool:
        return self.parts > other.parts

    def __ge__(self, other: DriverVersion) -> bool:
        return self.parts >= other.parts


def parse_cuda(text: str) -> CudaVersion:
    """Parse "X.Y" or "X.Y.Z"; raise `ResolveError` for anything else ("11.x", "abc")."""
    match = _CUDA_RE.match(text.strip())
    if match is None:
        raise ResolveError(
            f"malformed CUDA version `{text}`: expected X.Y or X.Y.Z, e.g. 11.4 or 11.4.4"
        )
    major, minor, patch = match.groups()
    return CudaVersion(int(major), int(minor), None if patch is None else int(patch))


def parse_driver(text: str) -> DriverVersion:
    """Parse a driver version "NNN.NN[.NN]" ("470.256.02", "570.26").

    A bare branch ("470") is refused: say which driver runs, as `nvidia-smi` prints it.
    """
    cleaned = text.strip()
    match = _DRIVER_RE.match(cleaned)
    if match is None:
        raise ResolveError(
            f"malformed driver version `{text}`: expected the full version that "
            "`nvidia-smi` prints, e.g. 470.256.02"
        )
    major, minor, patch = match.groups()
    return DriverVersion(cleaned, (int(major), int(minor), int(patch or 0)))


def driver_floor(text: str) -> DriverVersion:
    """Parse a driver bound from the data tables, where a bare branch ("580") is allowed."""
    branch = _BRANCH_RE.match(text.strip())
    if branch is not None:
        return DriverVersion(text.strip(), (int(branch.group(1)), 0, 0))
    return parse_driver(text)


def newest_of_branch(branch: int) -> DriverVersion:
    """The newest driver of a branch, for when only the branch is known ("R470")."""
    return DriverVersion(f"R{branch}", (branch, 10**9, 10**9))


def parse_branch(text: str) -> int | None:
    """Parse "R470" to 470; "current" (still supported) to None."""
    if text == "current":
        return None
    match = _BRANCH_RE.match(text)
    if match is None:
        raise ValueError(f"malformed driver branch {text!r} (expected R<number> or current)")
    return int(match.group(1))
