"""The compatibility facts, read once from the TOML tables in `ember/compat/data/`.

`facts()` parses `toolkits.toml`, `architectures.toml`, `gpus.toml` and
`traps.toml` on first use (cached) into frozen records. Every row cites its
sources by key; the loader resolves the keys to the full citations and
refuses a table with an unknown key, a duplicate or a malformed value, so a
bad edit fails the test suite rather than a user's build.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from ember.compat.versions import (
    CudaVersion,
    DriverVersion,
    driver_floor,
    parse_branch,
    parse_cuda,
)
from ember.errors import EmberError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DATA_FILES = ("toolkits.toml", "architectures.toml", "gpus.toml", "traps.toml")


class CompatDataError(EmberError):
    """A table under `ember/compat/data/` is malformed (a bug in ember, not in the input)."""


@dataclass(frozen=True)
class Toolkit:
    """One CUDA toolkit minor release and what it can target and needs."""

    version: str
    sm_min: int
    sm_max: int
    sm_max_label: str
    suffixes: tuple[str, ...]
    deprecated: tuple[int, ...]
    deprecated_below: int | None
    min_driver: DriverVersion
    minor_compat_driver: DriverVersion | None
    gcc_max: int
    gcc_header_max: int | None
    note: str
    sources: tuple[str, ...]

    @property
    def key(self) -> tuple[int, int]:
        """(major, minor), for ordering."""
        major, minor = self.version.split(".")
        return (int(major), int(minor))

    @property
    def major(self) -> int:
        """The major version (11 for 11.4)."""
        return self.key[0]

    @property
    def cuda(self) -> CudaVersion:
        """The version as a `CudaVersion` covering every release of this minor."""
        return CudaVersion(*self.key)

    @property
    def sm_range(self) -> str:
        """The targetable range as the facts write it, e.g. "35-87" or "50-90a"."""
        return f"{self.sm_min}-{self.sm_max_label}"

    def in_range(self, sm: int) -> bool:
        """True if nvcc of this toolkit accepts sm number `sm` (range only)."""
        return self.sm_min <= sm <= self.sm_max

    def deprecates(self, sm: int) -> bool:
        """True if nvcc of this toolkit warns that `sm` is deprecated."""
        if sm in self.deprecated:
            return True
        return self.deprecated_below is not None and sm < self.deprecated_below


@dataclass(frozen=True)
class Architecture:
    """One compute capability: its architecture and the toolkits and drivers that support it."""

    cc: str
    name: str
    first_toolkit: str | None
    last_toolkit: str
    last_driver_branch: str
    note: str
    sources: tuple[str, ...]

    @property
    def sm(self) -> int:
        """The sm number: 37 for compute capability 3.7, 120 for 12.0."""
        return sm_of(self.cc)

    @property
    def last_branch(self) -> int | None:
        """The last driver branch as a number (470), or None if still supported."""
        return parse_branch(self.last_driver_branch)

    def within_lifetime(self, toolkit: Toolkit) -> bool:
        """True if `toolkit` is not before the first or after the last toolkit for this cc."""
        if self.first_toolkit is not None and toolkit.key < _key(self.first_toolkit):
            return False
        if self.last_toolkit == "current":
            return True
        major, minor = self.last_toolkit.split(".")
        if minor == "x":
            return toolkit.major <= int(major)
        return toolkit.key <= (int(major), int(minor))


@dataclass(frozen=True)
class GpuRecord:
    """One GPU name from `gpus.toml`."""

    name: str
    cc: str
    segment: str
    aliases: tuple[str, ...]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Trap:
    """A known bad combination from `traps.toml`."""

    id: str
    kind: str
    summary: str
    fix: str
    gcc_min: int | None
    gcc_max: int | None
    cuda_min: CudaVersion | None
    cuda_max: CudaVersion | None
    architectures: tuple[str, ...]
    note: str
    sources: tuple[str, ...]

    def covers_cuda(self, version: CudaVersion) -> bool:
        """True if the trap's CUDA range (inclusive; absent = open) contains `version`."""
        if self.cuda_min is not None and not version.at_least(self.cuda_min):
            return False
        return self.cuda_max is None or version.at_most(self.cuda_max)

    def covers_gcc(self, gcc: int) -> bool:
        """True if the trap's GCC major range (inclusive; absent = open) contains `gcc`."""
        if self.gcc_min is not None and gcc < self.gcc_min:
            return False
        return self.gcc_max is None or gcc <= self.gcc_max


@dataclass(frozen=True)
class Matching:
    """How GPU names are compared (from `[matching]` of `gpus.toml`)."""

    ignore_words: frozenset[str]
    ignore_patterns: tuple[re.Pattern[str], ...]
    optional_words: frozenset[str]


@dataclass(frozen=True)
class Facts:
    """All tables, parsed. Toolkits are sorted oldest first."""

    toolkits: tuple[Toolkit, ...]
    never_released: dict[str, str]
    architectures: tuple[Architecture, ...]
    gpus: tuple[GpuRecord, ...]
    traps: tuple[Trap, ...]
    matching: Matching
    sources: dict[str, dict[str, str]]

    def toolkit(self, version: CudaVersion) -> Toolkit | None:
        """The toolkit row for `version` (any patch of its minor), or None."""
        for toolkit in self.toolkits:
            if toolkit.key == version.minor_key:
                return toolkit
        return None

    def architecture(self, cc: str) -> Architecture | None:
        """The architecture row for compute capability "3.7", or None."""
        for arch in self.architectures:
            if arch.cc == cc:
                return arch
        return None

    def architecture_by_sm(self, sm: int) -> Architecture | None:
        """The architecture row for sm number 37, or None."""
        for arch in self.architectures:
            if arch.sm == sm:
                return arch
        return None

    def supports(self, toolkit: Toolkit, arch: Architecture) -> bool:
        """True if `toolkit` can build cubins or PTX for `arch`."""
        return toolkit.in_range(arch.sm) and arch.within_lifetime(toolkit)


def sm_of(cc: str) -> int:
    """ "3.7" -> 37, "12.0" -> 120."""
    major, minor = cc.split(".")
    return int(major) * 10 + int(minor)


def _key(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return (int(major), int(minor))


@cache
def facts() -> Facts:
    """Load and check every table once; later calls return the same object."""
    raw = {name: _read(name) for name in DATA_FILES}
    sources = {name: _sources(name, table) for name, table in raw.items()}
    toolkits = tuple(
        sorted(
            (
                _toolkit(row, sources["toolkits.toml"])
                for row in _rows(raw, "toolkits.toml", "toolkit")
            ),
            key=lambda t: t.key,
        )
    )
    never = raw["toolkits.toml"].get("never_released", {})
    architectures = tuple(
        _architecture(row, sources["architectures.toml"])
        for row in _rows(raw, "architectures.toml", "architecture")
    )
    gpus = tuple(_gpu(row, sources["gpus.toml"]) for row in _rows(raw, "gpus.toml", "gpu"))
    traps = tuple(_trap(row, sources["traps.toml"]) for row in _rows(raw, "traps.toml", "trap"))
    result = Facts(
        toolkits=toolkits,
        never_released={str(k): str(v) for k, v in never.items()},
        architectures=architectures,
        gpus=gpus,
        traps=traps,
        matching=_matching(raw["gpus.toml"].get("matching", {})),
        sources=sources,
    )
    _check(result)
    return result


def _read(name: str) -> dict[str, Any]:
    text = (
        resources.files("ember.compat").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    )
    try:
        table: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CompatDataError(f"ember/compat/data/{name}: {exc}") from exc
    return table


def _sources(name: str, table: dict[str, Any]) -> dict[str, str]:
    found = table.get("sources")
    if not isinstance(found, dict) or not found:
        raise CompatDataError(f"ember/compat/data/{name}: missing [sources] table")
    return {str(k): str(v) for k, v in found.items()}


def _rows(raw: dict[str, dict[str, Any]], name: str, key: str) -> list[dict[str, Any]]:
    rows = raw[name].get(key)
    if not isinstance(rows, list) or not rows:
        raise CompatDataError(f"ember/compat/data/{name}: no `{key}` rows")
    for row in rows:
        row["__file__"] = name
    return rows


def _where(row: dict[str, Any]) -> str:
    ident = row.get("version") or row.get("cc") or row.get("id") or row.get("name") or "?"
    if "name" in row and "cc" in row and "segment" in row:
        ident = row["name"]
    return f"ember/compat/data/{row['__file__']}: row {ident}"


def _get(row: dict[str, Any], key: str, kind: type, default: Any = ...) -> Any:
    if key not in row:
        if default is ...:
            raise CompatDataError(f"{_where(row)}: missing `{key}`")
        return default
    value = row[key]
    if kind is int and isinstance(value, bool):
        raise CompatDataError(f"{_where(row)}: `{key}` must be an integer")
    if not isinstance(value, kind):
        raise CompatDataError(f"{_where(row)}: `{key}` must be {kind.__name__}")
    return value


def _cite(row: dict[str, Any], known: dict[str, str]) -> tuple[str, ...]:
    value = row.get("source")
    keys = [value] if isinstance(value, str) else value
    if not isinstance(keys, list) or not keys:
        raise CompatDataError(f"{_where(row)}: every row needs a `source`")
    cited = []
    for key in keys:
        if key not in known:
            raise CompatDataError(f"{_where(row)}: unknown source `{key}`")
        cited.append(known[key])
    return tuple(cited)


def _ints(row: dict[str, Any], key: str) -> tuple[int, ...]:
    values = _get(row, key, list, [])
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise CompatDataError(f"{_where(row)}: `{key}` must list integers")
    return tuple(values)


def _strs(row: dict[str, Any], key: str) -> tuple[str, ...]:
    values = _get(row, key, list, [])
    if not all(isinstance(v, str) for v in values):
        raise CompatDataError(f"{_where(row)}: `{key}` must list strings")
    return tuple(values)


def _cuda(row: dict[str, Any], key: str) -> CudaVersion | None:
    value = _get(row, key, str, None)
    return None if value is None else parse_cuda(value)


def _toolkit(row: dict[str, Any], known: dict[str, str]) -> Toolkit:
    compat = _get(row, "minor_compat_driver", str, None)
    version = _get(row, "version", str)
    parse_cuda(version)
    return Toolkit(
        version=version,
        sm_min=_get(row, "sm_min", int),
        sm_max=_get(row, "sm_max", int),
        sm_max_label=_get(row, "sm_max_label", str),
        suffixes=_strs(row, "suffixes"),
        deprecated=_ints(row, "deprecated"),
        deprecated_below=_get(row, "deprecated_below", int, None),
        min_driver=driver_floor(_get(row, "min_driver", str)),
        minor_compat_driver=None if compat is None else driver_floor(compat),
        gcc_max=_get(row, "gcc_max", int),
        gcc_header_max=_get(row, "gcc_header_max", int, None),
        note=_get(row, "note", str, ""),
        sources=_cite(row, known),
    )


def _architecture(row: dict[str, Any], known: dict[str, str]) -> Architecture:
    arch = Architecture(
        cc=_get(row, "cc", str),
        name=_get(row, "name", str),
        first_toolkit=_get(row, "first_toolkit", str, None),
        last_toolkit=_get(row, "last_toolkit", str),
        last_driver_branch=_get(row, "last_driver_branch", str),
        note=_get(row, "note", str, ""),
        sources=_cite(row, known),
    )
    if not re.fullmatch(r"\d+\.\d", arch.cc):
        raise CompatDataError(f"{_where(row)}: `cc` must look like 3.7")
    if not re.fullmatch(r"current|\d+\.(\d+|x)", arch.last_toolkit):
        raise CompatDataError(f"{_where(row)}: `last_toolkit` must be X.Y, X.x or current")
    try:
        arch.last_branch  # noqa: B018 - validate the branch spelling
    except ValueError as exc:
        raise CompatDataError(f"{_where(row)}: {exc}") from exc
    return arch


def _gpu(row: dict[str, Any], known: dict[str, str]) -> GpuRecord:
    return GpuRecord(
        name=_get(row, "name", str),
        cc=_get(row, "cc", str),
        segment=_get(row, "segment", str),
        aliases=_strs(row, "aliases"),
        sources=_cite(row, known),
    )


def _trap(row: dict[str, Any], known: dict[str, str]) -> Trap:
    return Trap(
        id=_get(row, "id", str),
        kind=_get(row, "kind", str),
        summary=_get(row, "summary", str),
        fix=_get(row, "fix", str),
        gcc_min=_get(row, "gcc_min", int, None),
        gcc_max=_get(row, "gcc_max", int, None),
        cuda_min=_cuda(row, "cuda_min"),
        cuda_max=_cuda(row, "cuda_max"),
        architectures=_strs(row, "architectures"),
        note=_get(row, "note", str, ""),
        sources=_cite(row, known),
    )


def _matching(table: dict[str, Any]) -> Matching:
    return Matching(
        ignore_words=frozenset(str(w).lower() for w in table.get("ignore_words", [])),
        ignore_patterns=tuple(re.compile(str(p)) for p in table.get("ignore_patterns", [])),
        optional_words=frozenset(str(w).lower() for w in table.get("optional_words", [])),
    )


_TRAP_KINDS = frozenset({"gcc", "host", "image", "forward-compat"})
_SEGMENTS = frozenset({"data-center", "workstation", "geforce", "embedded"})


def _check(data: Facts) -> None:
    """Cross-table consistency: unique keys, known references."""
    versions = [t.version for t in data.toolkits]
    if len(set(versions)) != len(versions):
        raise CompatDataError("ember/compat/data/toolkits.toml: duplicate toolkit versions")
    ccs = [a.cc for a in data.architectures]
    if len(set(ccs)) != len(ccs):
        raise CompatDataError(
            "ember/compat/data/architectures.toml: duplicate compute capabilities"
        )
    names = {a.name for a in data.architectures}
    for arch in data.architectures:
        if arch.first_toolkit is not None and data.toolkit(parse_cuda(arch.first_toolkit)) is None:
            raise CompatDataError(
                f"ember/compat/data/architectures.toml: {arch.cc}: unknown first_toolkit "
                f"{arch.first_toolkit}"
            )
    for gpu in data.gpus:
        if data.architecture(gpu.cc) is None:
            raise CompatDataError(
                f"ember/compat/data/gpus.toml: {gpu.name}: no architecture row for cc {gpu.cc}"
            )
        if gpu.segment not in _SEGMENTS:
            raise CompatDataError(
                f"ember/compat/data/gpus.toml: {gpu.name}: unknown segment {gpu.segment}"
            )
    for trap in data.traps:
        if trap.kind not in _TRAP_KINDS:
            raise CompatDataError(f"ember/compat/data/traps.toml: {trap.id}: unknown kind")
        for name in trap.architectures:
            if name not in names:
                raise CompatDataError(
                    f"ember/compat/data/traps.toml: {trap.id}: unknown architecture {name}"
                )
