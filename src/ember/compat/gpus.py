"""GPU names and compute capabilities: `lookup_gpu("K80")`, `known_gpus()`.

Names come from `data/gpus.toml`; each card's architecture, last toolkit and
last driver branch come from `data/architectures.toml` through its compute
capability. Matching is forgiving: case, spaces, dashes, vendor words
("NVIDIA", "GeForce", "Tesla", ...), memory sizes and form factors
("-SXM4-40GB") are ignored, so nvidia-smi's spelling of a card works.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cache

from ember.compat.facts import Architecture, Facts, GpuRecord, facts, sm_of
from ember.errors import ResolveError

_CC_RE = re.compile(r"^(?:sm_?|compute_?)?(\d+)(?:\.(\d+))?$", re.IGNORECASE)


@dataclass(frozen=True)
class Gpu:
    """A target GPU: a named card, or any GPU of a compute capability ("3.7").

    `last_toolkit` and `last_driver_branch` are as NVIDIA's matrix words them
    ("11.x", "R470", "current"); `newest_toolkit` is the newest toolkit in
    ember's table that can target the card ("11.8").
    """

    name: str
    compute_capability: str
    architecture: str
    last_toolkit: str
    last_driver_branch: str
    newest_toolkit: str
    first_toolkit: str | None = None
    segment: str = ""
    generic: bool = False

    @property
    def sm(self) -> int:
        """The sm number: 37 for compute capability 3.7."""
        return sm_of(self.compute_capability)

    @property
    def label(self) -> str:
        """What messages call the GPU: its name, or its architecture when given as a number."""
        if self.generic:
            return f"{self.architecture} {self.compute_capability}"
        return self.name

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict of the fields."""
        return {
            "name": self.name,
            "compute_capability": self.compute_capability,
            "sm": self.sm,
            "architecture": self.architecture,
            "segment": self.segment,
            "first_toolkit": self.first_toolkit,
            "last_toolkit": self.last_toolkit,
            "newest_toolkit": self.newest_toolkit,
            "last_driver_branch": self.last_driver_branch,
        }


def known_gpus() -> list[Gpu]:
    """Every named GPU of the table, in table order (Kepler first)."""
    return list(_index().gpus)


def lookup_gpu(text: str) -> Gpu:
    """Find a GPU by name ("Tesla K80", "k80", "NVIDIA A100-SXM4-40GB") or compute
    capability ("3.7", "37", "sm_37", "compute_37").

    Raises `ResolveError` for an unknown name (listing the closest known names)
    or an unknown compute capability (listing the known ones).
    """
    query = text.strip()
    if not query:
        raise ResolveError(
            "empty GPU name: give a name such as `Tesla K80` or a compute capability such as 3.7"
        )
    cc = _as_compute_capability(query)
    if cc is not None:
        return _generic(cc, query)
    index = _index()
    key = _key(query, index.data)
    found = index.by_key.get(key)
    if found is not None:
        return found
    loose = index.by_loose.get(_loose_key(query, index.data), ())
    if len(loose) == 1:
        return loose[0]
    if len(loose) > 1:
        names = ", ".join(sorted(g.name for g in loose))
        raise ResolveError(f"GPU name `{text}` is ambiguous: it could be {names}")
    raise ResolveError(_unknown_message(text, query, index))


def _as_compute_capability(text: str) -> str | None:
    match = _CC_RE.match(text)
    if match is None:
        return None
    whole, minor = match.groups()
    if minor is not None:
        return f"{int(whole)}.{int(minor)}"
    if len(whole) in (2, 3):  # "37" -> 3.7, "120" -> 12.0
        return f"{int(whole[:-1])}.{whole[-1]}"
    return None


def _generic(cc: str, text: str) -> Gpu:
    data = facts()
    arch = data.architecture(cc)
    if arch is None:
        known = ", ".join(a.cc for a in data.architectures)
        raise ResolveError(f"unknown compute capability `{text}` ({cc}): known ones are {known}")
    return _make(f"compute capability {cc}", arch, data, generic=True)


def _make(
    name: str, arch: Architecture, data: Facts, *, segment: str = "", generic: bool = False
) -> Gpu:
    newest = [t.version for t in data.toolkits if data.supports(t, arch)]
    return Gpu(
        name=name,
        compute_capability=arch.cc,
        architecture=arch.name,
        last_toolkit=arch.last_toolkit,
        last_driver_branch=arch.last_driver_branch,
        newest_toolkit=newest[-1] if newest else "none",
        first_toolkit=arch.first_toolkit,
        segment=segment,
        generic=generic,
    )


@dataclass(frozen=True)
class _Index:
    data: Facts
    gpus: tuple[Gpu, ...]
    by_key: dict[str, Gpu]
    by_loose: dict[str, tuple[Gpu, ...]]


@cache
def _index() -> _Index:
    data = facts()
    gpus: list[Gpu] = []
    by_key: dict[str, Gpu] = {}
    by_loose: dict[str, list[Gpu]] = {}
    for record in data.gpus:
        gpu = _from_record(record, data)
        gpus.append(gpu)
        for spelling in (record.name, *record.aliases):
            key = _key(spelling, data)
            other = by_key.get(key)
            if other is not None and other.name != gpu.name:
                raise ValueError(
                    f"gpus.toml: {spelling!r} of {gpu.name} matches {other.name} as well"
                )
            by_key[key] = gpu
            same = by_loose.setdefault(_loose_key(spelling, data), [])
            if gpu not in same:
                same.append(gpu)
    return _Index(
        data=data,
        gpus=tuple(gpus),
        by_key=by_key,
        by_loose={k: tuple(v) for k, v in by_loose.items()},
    )


def _from_record(record: GpuRecord, data: Facts) -> Gpu:
    arch = data.architecture(record.cc)
    if arch is None:  # checked when the tables load
        raise ValueError(f"gpus.toml: {record.name}: unknown compute capability {record.cc}")
    return _make(record.name, arch, data, segment=record.segment)


def _words(text: str, data: Facts) -> list[str]:
    """The significant words of a name, lower case ("NVIDIA A100-SXM4-40GB" -> ["a100"])."""
    matching = data.matching
    return [
        w
        for w in re.split(r"[^0-9a-z]+", text.lower())
        if w
        and w not in matching.ignore_words
        and not any(p.match(w) for p in matching.ignore_patterns)
    ]


def _key(text: str, data: Facts) -> str:
    """The exact matching key: the significant words joined ("rtx3090")."""
    return "".join(_words(text, data))


def _loose_key(text: str, data: Facts) -> str:
    """The loose key: without the optional words ("gtx", "rtx"), so "3090" finds the RTX 3090."""
    optional = data.matching.optional_words
    return "".join(w for w in _words(text, data) if w not in optional)


def _unknown_message(text: str, query: str, index: _Index) -> str:
    data = index.data
    close = difflib.get_close_matches(_key(query, data), list(index.by_key), n=5, cutoff=0.6)
    gpus = [index.by_key[k] for k in close]
    loose = difflib.get_close_matches(
        _loose_key(query, data), list(index.by_loose), n=5, cutoff=0.6
    )
    for k in loose:
        gpus.extend(index.by_loose[k])
    if not gpus:  # a short or odd query: look further
        gpus = [
            index.by_key[k]
            for k in difflib.get_close_matches(_key(query, data), list(index.by_key), 5, 0.4)
        ]
    names: list[str] = []
    for gpu in gpus:
        if gpu.name not in names:
            names.append(gpu.name)
    if names:
        return (
            f"unknown GPU `{text}`: closest known names: {', '.join(names[:5])} (see `ember gpus`)"
        )
    return (
        f"unknown GPU `{text}`: give a compute capability such as 3.7, "
        "or see `ember gpus` for the known names"
    )
