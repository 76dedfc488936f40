"""Choose a CUDA toolkit, GCC and CMAKE_CUDA_ARCHITECTURES for target GPUs and a driver.

`resolve(Request(...))` returns a `Decision` or raises `Refusal` (a
`ResolveError`, exit code 2) that names the rule and a fix. The rules, in
the order they are applied:

1. Every target GPU must be run by the driver: not older than the GA driver
   of the first toolkit for its architecture, not newer than its last driver
   branch (Kepler: R470). Without a driver, the newest driver of the oldest
   "last branch" among the targets is assumed (a K80 means R470).
2. The toolkit must target every GPU (`sm` range of `toolkits.toml` and the
   architecture's lifetime in `architectures.toml`).
3. Unpinned, the newest such toolkit that the driver runs natively is chosen
   (native: driver >= the toolkit's GA driver; R470 runs 11.4).
4. A pinned toolkit newer than the driver's native CUDA is accepted for cubins
   only (`real`), within the driver's major, through minor-version
   compatibility (driver >= 450.80.02 for 11.x), with a warning. PTX
   (`virtual`, `both`) needs toolkit <= the driver's CUDA: the driver cannot
   JIT newer PTX. CUDA 10.x has no minor-version compatibility.
5. GCC: the toolkit's newest supported major, stepping around the known
   traps of `traps.toml`; a pinned GCC on a trap or above the maximum is refused.

Every fact comes from the tables in `ember/compat/data/`; this module only
applies them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ember.compat.facts import Architecture, Facts, Toolkit, Trap, facts
from ember.compat.gpus import Gpu, lookup_gpu
from ember.compat.versions import (
    CudaVersion,
    DriverVersion,
    newest_of_branch,
    parse_cuda,
    parse_driver,
)
from ember.errors import ResolveError

ARCH_MODES = ("real", "virtual", "both")
_SPECIAL_ARCHS = frozenset({"all", "all-major", "native"})
_ARCH_RE = re.compile(r"^(\d+)([a-z]?)(?:-(real|virtual))?$")


class Refusal(ResolveError):
    """The requested toolchain cannot work: `rule` names the rule, the message says the fix."""

    def __init__(self, message: str, *, rule: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rule = rule


@dataclass(frozen=True)
class Request:
    """What to resolve.

    gpus: GPU names or compute capabilities ("Tesla K80", "3.7", "sm_86").
    driver: the host driver as `nvidia-smi` prints it ("470.256.02"), if known.
    cuda: a pinned toolkit, "X.Y" or "X.Y.Z". gcc: a pinned GCC major.
    arch_mode: "real" (cubins only), "virtual" (PTX only) or "both".
    cuda_architectures: an explicit CMAKE_CUDA_ARCHITECTURES list, as a profile
    may give it; it is checked against the toolkit and the GPUs, and its
    entries decide whether PTX is embedded (arch_mode is then ignored).
    """

    gpus: tuple[str, ...]
    driver: str | None = None
    cuda: str | None = None
    gcc: int | None = None
    arch_mode: str = "real"
    cuda_architectures: str | None = None


@dataclass(frozen=True)
class Decision:
    """The resolved toolchain and why.

    cuda: the toolkit ("11.4", or the pinned "11.4.4"); gcc: the GCC major;
    cuda_architectures: the CMAKE_CUDA_ARCHITECTURES value; min_driver: the
    lowest driver that runs the build on every target; native_driver: the
    toolkit's GA driver (runs it natively, every feature); max_driver_branch:
    the newest driver branch that still runs every target ("R470"), if any;
    minor_version_compat: True if the chosen toolkit is newer than the driver's
    native CUDA; forward_compat: False where cuda-compat packages must never be
    injected (Kepler).
    """

    cuda: str
    gcc: int
    cuda_architectures: str
    min_driver: str
    warnings: tuple[str, ...]
    reasons: tuple[str, ...]
    gpus: tuple[Gpu, ...]
    arch_mode: str = "real"
    native_driver: str = ""
    max_driver_branch: str | None = None
    minor_version_compat: bool = False
    forward_compat: bool = True
    driver: str | None = None

    @property
    def cuda_minor(self) -> str:
        """The toolkit's "major.minor" ("11.4" for "11.4.4")."""
        return parse_cuda(self.cuda).family

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: cuda, gcc, cuda_architectures, min_driver, warnings, and the rest."""
        return {
            "cuda": self.cuda,
            "gcc": self.gcc,
            "cuda_architectures": self.cuda_architectures,
            "arch_mode": self.arch_mode,
            "min_driver": self.min_driver,
            "native_driver": self.native_driver,
            "max_driver_branch": self.max_driver_branch,
            "driver": self.driver,
            "minor_version_compat": self.minor_version_compat,
            "forward_compat": self.forward_compat,
            "warnings": list(self.warnings),
            "reasons": list(self.reasons),
            "gpus": [gpu.to_json() for gpu in self.gpus],
        }


@dataclass(frozen=True)
class ArchEntry:
    """One entry of a CMAKE_CUDA_ARCHITECTURES list: "37-real", "86-virtual", "90a"."""

    sm: int
    suffix: str
    kind: str  # "real", "virtual" or "both" (a bare number)

    @property
    def cubin(self) -> bool:
        """True if the entry builds a cubin (`-real` or bare)."""
        return self.kind in ("real", "both")

    @property
    def ptx(self) -> bool:
        """True if the entry embeds PTX (`-virtual` or bare)."""
        return self.kind in ("virtual", "both")

    def __str__(self) -> str:
        tail = "" if self.kind == "both" else f"-{self.kind}"
        return f"{self.sm}{self.suffix}{tail}"


def parse_architectures(text: str) -> tuple[ArchEntry, ...]:
    """Parse a CMAKE_CUDA_ARCHITECTURES list ("37-real;86-real"); ";" or "," separate entries.

    `all`, `all-major` and `native` are refused: they depend on the toolkit
    or on the GPU of the build host, so they are not reproducible.
    """
    items = [item.strip() for item in re.split(r"[;,]", text) if item.strip()]
    if not items:
        raise ResolveError(
            "empty CMAKE_CUDA_ARCHITECTURES list: give entries such as 37-real;86-real"
        )
    entries: list[ArchEntry] = []
    for item in items:
        if item.lower() in _SPECIAL_ARCHS:
            raise Refusal(
                f"CMAKE_CUDA_ARCHITECTURES `{item}` depends on the toolkit or on the build "
                "host's GPU: give an explicit list such as 37-real;86-real",
                rule="architectures-explicit",
            )
        match = _ARCH_RE.match(item.lower())
        if match is None:
            raise ResolveError(
                f"malformed CMAKE_CUDA_ARCHITECTURES entry `{item}`: expected NN, NN-real "
                "or NN-virtual, e.g. 37-real"
            )
        sm, suffix, kind = match.groups()
        entries.append(ArchEntry(int(sm), suffix, kind or "both"))
    return tuple(entries)


def check_architectures(cuda: str, archs: str) -> None:
    """Check an explicit CMAKE_CUDA_ARCHITECTURES list against a toolkit.

    Every entry must be a known compute capability that CUDA `cuda` can
    target, and its suffix ("a", "f") one the toolkit knows. Raises
    `ResolveError` (a `Refusal`) naming the entries and the toolkits that would take them.
    """
    data = facts()
    version = parse_cuda(cuda)
    toolkit = _known_toolkit(version, data)
    _check_entries(parse_architectures(archs), toolkit, version, archs, data)


def resolve(req: Request) -> Decision:
    """Choose the toolchain for `req`, or raise `Refusal` naming the rule and a fix."""
    data = facts()
    gpus = _targets(req.gpus)
    entries = parse_architectures(req.cuda_architectures) if req.cuda_architectures else None
    mode = _mode(req.arch_mode) if entries is None else _mode_of(entries)
    ptx = mode != "real"
    gcc_pin = _gcc_pin(req.gcc)
    pin = parse_cuda(req.cuda) if req.cuda is not None else None
    host = parse_driver(req.driver) if req.driver is not None else None
    if pin is not None:
        _known_toolkit(pin, data)

    reasons: list[str] = [_describe(gpu, data) for gpu in gpus]
    warnings: list[str] = []
    window = _DriverWindow.of(gpus, data)
    driver = _effective_driver(host, window, reasons)
    native = _native_toolkit(driver, data)
    required = _required(gpus, entries, data)

    if pin is not None:
        toolkit = _pinned_toolkit(pin, required, driver, native, data)
        version = pin
        compat = _check_driver(toolkit, pin, mode, driver, native)
        reasons.append(f"CUDA {pin}: pinned")
    else:
        toolkit = _choose_toolkit(required, driver, native, gcc_pin, reasons, data)
        version = toolkit.cuda
        compat = False

    gcc = _choose_gcc(toolkit, version, gcc_pin, reasons, data)

    if entries is not None:
        _check_entries(entries, toolkit, version, req.cuda_architectures or "", data)
        _check_coverage(entries, gpus, req.cuda_architectures or "")
        archs = ";".join(str(e) for e in entries)
        reasons.append(
            f"CMAKE_CUDA_ARCHITECTURES {archs}: as given (checked against CUDA {version})"
        )
    else:
        archs = _architectures(gpus, mode)
        reasons.append(_arch_reason(archs, mode))

    for sm, labels in _deprecated(toolkit, required):
        warnings.append(
            f"CUDA {version} deprecates sm_{sm} ({labels}): nvcc prints a deprecation "
            "warning; the build still works"
        )
    if compat and driver is not None and native is not None:
        warnings.append(
            f"CUDA {version} is newer than CUDA {native.version}, which {driver.words} runs "
            "natively: its cubins run through minor-version compatibility (cubins only; "
            f"driver >= {toolkit.minor_compat_driver}) with a limited feature set, and APIs "
            "that need a newer driver return cudaErrorCallRequiresNewerDriver"
        )
    if mode == "virtual":
        warnings.append(
            "arch mode virtual embeds PTX only: the driver JIT-compiles every kernel at the "
            "first start (a slow first run; later starts use the JIT cache)"
        )

    forward_compat = True
    archs_of_targets = {gpu.architecture for gpu in gpus}
    for trap in data.traps:
        if trap.kind == "gcc" or not trap.covers_cuda(version):
            continue
        if trap.architectures and not archs_of_targets.intersection(trap.architectures):
            continue
        if trap.kind == "forward-compat":
            forward_compat = False
            reasons.append(f"no cuda-compat packages: {trap.summary}; {trap.fix}")
        else:
            warnings.append(f"{trap.summary}: {trap.fix}")

    min_driver = toolkit.min_driver
    if not ptx and toolkit.minor_compat_driver is not None:
        min_driver = toolkit.minor_compat_driver
    if window.floor is not None and window.floor.version > min_driver:
        min_driver = window.floor.version
    reasons.append(_min_driver_reason(min_driver, toolkit, ptx, window))

    return Decision(
        cuda=str(version),
        gcc=gcc,
        cuda_architectures=archs,
        min_driver=str(min_driver),
        warnings=tuple(warnings),
        reasons=tuple(reasons),
        gpus=gpus,
        arch_mode=mode,
        native_driver=str(toolkit.min_driver),
        max_driver_branch=None if window.ceiling is None else f"R{window.ceiling.branch}",
        minor_version_compat=compat,
        forward_compat=forward_compat,
        driver=None if host is None else str(host),
    )


def native_cuda(driver: str) -> str:
    """The CUDA version a driver runs natively: "470.256.02" -> "11.4".

    It is the newest toolkit whose GA driver is at or below `driver` (what
    `nvidia-smi` prints as "CUDA Version"). Raises `ResolveError` for a
    malformed driver or one older than every known toolkit.
    """
    version = parse_driver(driver)
    found = _native_toolkit(_Driver(version, f"driver {version}", implied=False), facts())
    if found is None:  # _native_toolkit raises instead
        raise ResolveError(f"driver {version} runs no known toolkit")
    return found.version


# --- the steps ---------------------------------------------------------------


@dataclass(frozen=True)
class _Bound:
    """A driver bound that one target GPU sets, and why."""

    version: DriverVersion
    gpu: Gpu
    why: str

    @property
    def branch(self) -> int:
        return self.version.branch


@dataclass(frozen=True)
class _DriverWindow:
    """The drivers that run every target: floor from the newest architecture, ceiling from the oldest."""

    floor: _Bound | None
    ceiling: _Bound | None

    @staticmethod
    def of(gpus: Sequence[Gpu], data: Facts) -> _DriverWindow:
        floor: _Bound | None = None
        ceiling: _Bound | None = None
        for gpu in gpus:
            arch = _arch(gpu, data)
            if arch.first_toolkit is not None:
                first = _known_toolkit(parse_cuda(arch.first_toolkit), data)
                why = (
                    f"the driver of CUDA {first.version}, the first toolkit for "
                    f"{arch.name} {arch.cc}"
                )
                if floor is None or first.min_driver > floor.version:
                    floor = _Bound(first.min_driver, gpu, why)
            branch = arch.last_branch
            if branch is not None and (ceiling is None or branch < ceiling.branch):
                why = f"R{branch} is the last driver branch for {arch.name} {arch.cc}"
                ceiling = _Bound(newest_of_branch(branch), gpu, why)
        return _DriverWindow(floor, ceiling)


@dataclass(frozen=True)
class _Driver:
    """The driver the decision is made for: the host's, or the newest one the targets allow."""

    version: DriverVersion
    words: str  # "driver 470.256.02", or "driver 470" when implied
    implied: bool
    limit: str = ""  # why a newer driver is no option, when implied


def _targets(texts: Sequence[str] | str) -> tuple[Gpu, ...]:
    items = (texts,) if isinstance(texts, str) else tuple(texts)
    if not items:
        raise ResolveError("no target GPU: give at least one GPU name or compute capability")
    found: list[Gpu] = []
    for text in items:
        gpu = lookup_gpu(text)
        if gpu not in found:
            found.append(gpu)
    return tuple(found)


def _mode(text: str) -> str:
    if text not in ARCH_MODES:
        raise ResolveError(f"unknown arch mode `{text}`: use one of {', '.join(ARCH_MODES)}")
    return text


def _mode_of(entries: Iterable[ArchEntry]) -> str:
    kinds = {e.kind for e in entries}
    if kinds == {"real"}:
        return "real"
    if kinds == {"virtual"}:
        return "virtual"
    return "both"


def _gcc_pin(gcc: int | None) -> int | None:
    if gcc is None:
        return None
    if isinstance(gcc, bool) or not isinstance(gcc, int) or gcc < 1:
        raise ResolveError(f"malformed GCC version `{gcc}`: give the major version, e.g. 10")
    return gcc


def _known_toolkit(version: CudaVersion, data: Facts) -> Toolkit:
    toolkit = data.toolkit(version)
    if toolkit is not None:
        return toolkit
    known = ", ".join(t.version for t in data.toolkits)
    never = data.never_released.get(version.family)
    if never is not None:
        raise Refusal(f"unknown CUDA version {version}: {never}", rule="toolkit-unknown")
    raise Refusal(
        f"unknown CUDA version {version}: ember knows CUDA {known}", rule="toolkit-unknown"
    )


def _arch(gpu: Gpu, data: Facts) -> Architecture:
    arch = data.architecture(gpu.compute_capability)
    if arch is None:  # every Gpu comes from the tables
        raise ResolveError(f"no architecture row for compute capability {gpu.compute_capability}")
    return arch


def _describe(gpu: Gpu, data: Facts) -> str:
    arch = _arch(gpu, data)
    head = f"{gpu.label} is {arch.name} sm_{arch.sm}"
    supporting = [t for t in data.toolkits if data.supports(t, arch)]
    if arch.last_toolkit == "current":
        toolkits = f"every toolkit from CUDA {supporting[0].version} on targets it"
    else:
        toolkits = (
            f"the newest toolkit that targets it is CUDA {supporting[-1].version} "
            f"(NVIDIA: last toolkit {arch.last_toolkit})"
        )
    if arch.last_branch is None:
        drivers = "current drivers run it"
    else:
        drivers = f"R{arch.last_branch} is its last driver branch"
    return f"{head}: {toolkits}, and {drivers}"


def _effective_driver(
    host: DriverVersion | None, window: _DriverWindow, reasons: list[str]
) -> _Driver | None:
    floor, ceiling = window.floor, window.ceiling
    if host is not None:
        if ceiling is not None and host.branch > ceiling.branch:
            gpu = ceiling.gpu
            raise Refusal(
                f"driver {host} cannot run {gpu.label} ({gpu.architecture} "
                f"sm_{gpu.sm}): {ceiling.why}; use an R{ceiling.branch} driver "
                "or build for this GPU elsewhere",
                rule="driver-drops-gpu",
            )
        if floor is not None and host < floor.version:
            gpu = floor.gpu
            raise Refusal(
                f"driver {host} is too old for {gpu.label} ({gpu.architecture} sm_{gpu.sm}): "
                f"it needs driver >= {floor.version}, {floor.why}; upgrade the driver",
                rule="driver-too-old-for-gpu",
            )
        return _Driver(host, f"driver {host}", implied=False)
    if ceiling is None:
        return None
    if floor is not None and floor.version > ceiling.version:
        raise Refusal(
            f"no driver runs both {ceiling.gpu.label} ({ceiling.why}) and "
            f"{floor.gpu.label} (needs driver >= {floor.version}, {floor.why}): "
            "build them as separate targets",
            rule="no-common-driver",
        )
    reasons.append(
        f"no driver given: assuming the newest R{ceiling.branch} driver, since {ceiling.why} "
        f"({ceiling.gpu.label})"
    )
    return _Driver(
        ceiling.version,
        f"driver {ceiling.branch}",
        implied=True,
        limit=f"{ceiling.why}, so no newer driver can help",
    )


def _native_toolkit(driver: _Driver | None, data: Facts) -> Toolkit | None:
    if driver is None:
        return None
    runnable = [t for t in data.toolkits if t.min_driver <= driver.version]
    if not runnable:
        oldest = data.toolkits[0]
        raise Refusal(
            f"{driver.words} is older than every toolkit ember knows: CUDA {oldest.version} "
            f"needs driver >= {oldest.min_driver}; upgrade the driver",
            rule="driver-too-old",
        )
    return runnable[-1]


def _required(
    gpus: Sequence[Gpu], entries: Sequence[ArchEntry] | None, data: Facts
) -> dict[int, tuple[Architecture, str]]:
    """sm -> (architecture, what asks for it), from the GPUs and an explicit list."""
    required: dict[int, tuple[Architecture, str]] = {}
    for gpu in gpus:
        arch = _arch(gpu, data)
        if arch.sm in required:
            required[arch.sm] = (arch, f"{required[arch.sm][1]}, {gpu.label}")
        else:
            required[arch.sm] = (arch, gpu.label)
    for entry in entries or ():
        found = data.architecture_by_sm(entry.sm)
        if found is None:
            raise Refusal(
                f"CMAKE_CUDA_ARCHITECTURES entry `{entry}`: sm_{entry.sm} is no known "
                f"compute capability (known: {', '.join(str(a.sm) for a in data.architectures)})",
                rule="architectures-unknown",
            )
        required.setdefault(entry.sm, (found, "CMAKE_CUDA_ARCHITECTURES"))
    return dict(sorted(required.items()))


def _targets_text(required: dict[int, tuple[Architecture, str]]) -> str:
    return ", ".join(f"sm_{sm} ({who})" for sm, (_, who) in required.items())


def _supporting(required: dict[int, tuple[Architecture, str]], data: Facts) -> list[Toolkit]:
    return [
        t for t in data.toolkits if all(data.supports(t, arch) for arch, _ in required.values())
    ]


def _range_fix(supporting: Sequence[Toolkit], version: CudaVersion) -> str:
    if not supporting:
        return "no toolkit targets all of them: build them as separate targets"
    lo, hi = supporting[0], supporting[-1]
    if hi.key < version.minor_key:
        return f"use CUDA <= {hi.version}"
    if lo.key > version.minor_key:
        return f"use CUDA >= {lo.version}"
    return f"use CUDA {lo.version} to {hi.version}"


def _no_common_toolkit(required: dict[int, tuple[Architecture, str]], data: Facts) -> Refusal:
    spans = []
    for sm, (arch, who) in required.items():
        ok = [t for t in data.toolkits if data.supports(t, arch)]
        if ok[0] is ok[-1]:
            span = f"CUDA {ok[0].version}"
        elif arch.last_toolkit == "current":
            span = f"CUDA {ok[0].version} or later"
        else:
            span = f"CUDA {ok[0].version} to {ok[-1].version}"
        spans.append(f"sm_{sm} ({who}) needs {span}")
    return Refusal(
        f"no CUDA toolkit targets all of {_targets_text(required)}: {'; '.join(spans)}; "
        "build them as separate targets",
        rule="no-common-toolkit",
    )


def _pinned_toolkit(
    pin: CudaVersion,
    required: dict[int, tuple[Architecture, str]],
    driver: _Driver | None,
    native: Toolkit | None,
    data: Facts,
) -> Toolkit:
    toolkit = _known_toolkit(pin, data)
    missing = {sm: v for sm, v in required.items() if not data.supports(toolkit, v[0])}
    if missing:
        fix = _range_fix(_supporting(required, data), pin)
        if driver is not None and native is not None:
            fix += f"; {driver.words} runs CUDA {native.version} natively"
        raise Refusal(
            f"CUDA {pin} cannot target {_targets_text(missing)}: {fix}",
            rule="toolkit-cannot-target",
        )
    return toolkit


def _check_driver(
    toolkit: Toolkit,
    version: CudaVersion,
    mode: str,
    driver: _Driver | None,
    native: Toolkit | None,
) -> bool:
    """Check a pinned toolkit against the driver; True if minor-version compatibility is used."""
    if driver is None or native is None or toolkit.min_driver <= driver.version:
        return False
    limit = f" ({driver.limit})" if driver.limit else ""
    if mode != "real":
        raise Refusal(
            f"arch mode {mode} embeds PTX from CUDA {version}, which {driver.words} (CUDA "
            f"{native.version}) cannot JIT-compile (cudaErrorUnsupportedPtxVersion): use CUDA "
            f"<= {native.version}, or --arch-mode real for cubins only{limit}",
            rule="ptx-newer-than-driver",
        )
    compat = toolkit.minor_compat_driver
    if compat is not None and native.major == toolkit.major and driver.version >= compat:
        return True
    if compat is None:
        how = f"CUDA {toolkit.major}.x has no minor-version compatibility"
    elif native.major != toolkit.major:
        how = (
            f"minor-version compatibility works only within a major version, and it needs "
            f"driver >= {compat} for CUDA {toolkit.major}.x"
        )
    else:
        how = f"minor-version compatibility needs driver >= {compat}"
    upgrade = limit.strip() or "or upgrade the driver"
    raise Refusal(
        f"CUDA {version} needs driver >= {toolkit.min_driver}; {driver.words} runs CUDA "
        f"{native.version} natively and {how}: use CUDA <= {native.version} {upgrade}".rstrip(),
        rule="driver-too-old-for-toolkit",
    )


def _choose_toolkit(
    required: dict[int, tuple[Architecture, str]],
    driver: _Driver | None,
    native: Toolkit | None,
    gcc_pin: int | None,
    reasons: list[str],
    data: Facts,
) -> Toolkit:
    supporting = _supporting(required, data)
    if not supporting:
        raise _no_common_toolkit(required, data)
    runnable = [t for t in supporting if driver is None or t.min_driver <= driver.version]
    if not runnable and driver is not None and native is not None:
        raise Refusal(
            f"{driver.words} runs CUDA {native.version} natively, older than every toolkit "
            f"that targets {_targets_text(required)} (CUDA {supporting[0].version} needs driver "
            f">= {supporting[0].min_driver}): "
            + (driver.limit or "upgrade the driver")
            + "; pin a newer CUDA for cubins through minor-version compatibility, if its "
            "major matches",
            rule="driver-too-old-for-toolkit",
        )
    candidates = runnable
    if gcc_pin is not None:
        candidates = [t for t in runnable if not _gcc_refusals(t, t.cuda, gcc_pin, data)]
        if not candidates:
            raise _gcc_without_toolkit(gcc_pin, required, supporting, runnable, driver, data)
    chosen = candidates[-1]
    targets = ", ".join(f"sm_{sm}" for sm in required)
    why = f"CUDA {chosen.version} is the newest toolkit that targets {targets}"
    if driver is not None:
        why += f" and that {driver.words} runs natively (it needs driver >= {chosen.min_driver})"
    if gcc_pin is not None:
        why += f" and that accepts GCC {gcc_pin}"
    newest = supporting[-1]
    if newest is not chosen and newest.min_driver > chosen.min_driver and driver is not None:
        why += (
            f"; CUDA {newest.version} targets them too but needs driver >= "
            f"{newest.min_driver} natively (pin it with cubins only to use minor-version "
            "compatibility)"
        )
    reasons.append(why)
    return chosen


def _gcc_without_toolkit(
    gcc: int,
    required: dict[int, tuple[Architecture, str]],
    supporting: Sequence[Toolkit],
    runnable: Sequence[Toolkit],
    driver: _Driver | None,
    data: Facts,
) -> Refusal:
    accepting = [t.version for t in supporting if not _gcc_refusals(t, t.cuda, gcc, data)]
    newest = runnable[-1]
    best = _best_gcc(newest, newest.cuda, data)[0]
    targets = ", ".join(f"sm_{sm}" for sm in required)
    runs = ""
    if driver is not None:
        runs = f" and that {driver.words} runs natively (up to CUDA {newest.version})"
    fix = f"use --gcc {best} (CUDA {newest.version})"
    if accepting:
        fix += (
            f", or pin --cuda {accepting[-1]} (CUDA {', '.join(accepting)} accept GCC {gcc}; "
            "cubins only through minor-version compatibility where the driver is older)"
        )
    return Refusal(
        f"GCC {gcc} works with none of the toolkits that target {targets}{runs}: {fix}",
        rule="gcc-no-toolkit",
    )


def _gcc_refusals(toolkit: Toolkit, version: CudaVersion, gcc: int, data: Facts) -> list[str]:
    """Why GCC `gcc` cannot build with `toolkit` (empty if it can)."""
    problems = [f"{trap.summary} ({trap.fix})" for trap in _gcc_traps(version, gcc, data)]
    if gcc > toolkit.gcc_max and not problems:
        problems.append(f"CUDA {version} supports GCC <= {toolkit.gcc_max}")
    return problems


def _gcc_traps(version: CudaVersion, gcc: int, data: Facts) -> list[Trap]:
    return [
        t for t in data.traps if t.kind == "gcc" and t.covers_cuda(version) and t.covers_gcc(gcc)
    ]


def _best_gcc(toolkit: Toolkit, version: CudaVersion, data: Facts) -> tuple[int, list[str]]:
    """The newest GCC major the toolkit supports that no trap forbids, and the traps stepped round."""
    skipped: list[str] = []
    top = max(toolkit.gcc_max, toolkit.gcc_header_max or 0)
    for gcc in range(top, 0, -1):
        traps = _gcc_traps(version, gcc, data)
        if traps:
            skipped.append(f"GCC {gcc}: " + "; ".join(t.summary for t in traps))
            continue
        if gcc > toolkit.gcc_max:
            continue
        return gcc, skipped
    raise ResolveError(f"no GCC works with CUDA {version}")  # the tables rule this out


def _choose_gcc(
    toolkit: Toolkit, version: CudaVersion, pin: int | None, reasons: list[str], data: Facts
) -> int:
    if pin is None:
        gcc, skipped = _best_gcc(toolkit, version, data)
        why = f"GCC {gcc}: the newest GCC that CUDA {version} supports"
        if skipped:
            why += "; not newer, since " + "; ".join(skipped)
        reasons.append(why)
        return gcc
    traps = _gcc_traps(version, pin, data)
    if traps:
        best = _best_gcc(toolkit, version, data)[0]
        told = "; ".join(f"{t.summary} ({t.fix})" for t in traps)
        raise Refusal(
            f"GCC {pin} with CUDA {version}: {told}; use --gcc {best}",
            rule=f"gcc-trap:{traps[0].id}",
        )
    if pin > toolkit.gcc_max:
        raise Refusal(
            f"CUDA {version} supports GCC <= {toolkit.gcc_max} (crt/host_config.h), not GCC "
            f"{pin}: use --gcc {_best_gcc(toolkit, version, data)[0]} (nvcc's "
            "-allow-unsupported-compiler skips this check, at your own risk)",
            rule="gcc-too-new",
        )
    reasons.append(f"GCC {pin}: pinned; CUDA {version} supports GCC <= {toolkit.gcc_max}")
    return pin


def _architectures(gpus: Sequence[Gpu], mode: str) -> str:
    sms = sorted({gpu.sm for gpu in gpus})
    suffix = {"real": "-real", "virtual": "-virtual", "both": ""}[mode]
    return ";".join(f"{sm}{suffix}" for sm in sms)


def _arch_reason(archs: str, mode: str) -> str:
    what = {
        "real": "cubins only (arch mode real): no PTX, so no JIT at start, and no code for "
        "GPUs outside the list",
        "virtual": "PTX only (arch mode virtual): the driver JIT-compiles it for each GPU",
        "both": "cubins and PTX (arch mode both): the listed GPUs load cubins, newer ones "
        "JIT-compile the PTX",
    }[mode]
    return f"CMAKE_CUDA_ARCHITECTURES {archs}: {what}"


def _deprecated(
    toolkit: Toolkit, required: dict[int, tuple[Architecture, str]]
) -> list[tuple[int, str]]:
    return [(sm, who) for sm, (_, who) in required.items() if toolkit.deprecates(sm)]


def _min_driver_reason(
    min_driver: DriverVersion, toolkit: Toolkit, ptx: bool, window: _DriverWindow
) -> str:
    if window.floor is not None and window.floor.version == min_driver:
        why = f"{window.floor.gpu.label} needs it ({window.floor.why})"
    elif ptx:
        why = f"the PTX needs a driver that runs CUDA {toolkit.version} natively"
    elif toolkit.minor_compat_driver is not None and min_driver == toolkit.minor_compat_driver:
        why = (
            f"cubins of CUDA {toolkit.major}.x run on any driver >= {min_driver} through "
            f"minor-version compatibility (natively from {toolkit.min_driver})"
        )
    else:
        why = f"CUDA {toolkit.version} needs it (no minor-version compatibility)"
    text = f"minimum driver {min_driver}: {why}"
    if window.ceiling is not None:
        text += f"; newest usable branch R{window.ceiling.branch} ({window.ceiling.why})"
    return text


def _check_entries(
    entries: Sequence[ArchEntry], toolkit: Toolkit, version: CudaVersion, text: str, data: Facts
) -> None:
    bad: list[str] = []
    unknown: list[str] = []
    wanted: list[Architecture] = []
    for entry in entries:
        arch = data.architecture_by_sm(entry.sm)
        if arch is None:
            unknown.append(str(entry))
            continue
        wanted.append(arch)
        if not data.supports(toolkit, arch):
            bad.append(f"sm_{entry.sm} ({arch.name})")
        elif entry.suffix and entry.suffix not in toolkit.suffixes:
            bad.append(f"`{entry}` (CUDA {version} has no `{entry.suffix}` variants)")
    if unknown:
        known = ", ".join(str(a.sm) for a in data.architectures)
        raise Refusal(
            f"CMAKE_CUDA_ARCHITECTURES `{text}`: {', '.join(unknown)} name no known compute "
            f"capability (known: {known})",
            rule="architectures-unknown",
        )
    if bad:
        ok = [t for t in data.toolkits if all(data.supports(t, a) for a in wanted)]
        fix = _range_fix(ok, version) if ok else "drop the entries it cannot target"
        raise Refusal(
            f"CUDA {version} cannot target {', '.join(bad)} in CMAKE_CUDA_ARCHITECTURES "
            f"`{text}`: CUDA {version} targets sm_{toolkit.sm_min} to sm_{toolkit.sm_max_label}; "
            f"{fix}",
            rule="architectures-out-of-range",
        )


def _check_coverage(entries: Sequence[ArchEntry], gpus: Sequence[Gpu], text: str) -> None:
    """Every GPU needs code in the list: a cubin of its major at or below its sm, or PTX at or below it.

    (CUDA binary compatibility: a cubin for sm_XY runs on sm_XZ with Z >= Y;
    PTX for compute_XY is JIT-compiled for any later GPU. Arch-specific "a"
    cubins run only on their own sm.)
    """
    for gpu in gpus:
        sm = gpu.sm
        covered = any(
            (e.cubin and e.sm == sm)
            or (e.cubin and not e.suffix and e.sm // 10 == sm // 10 and e.sm <= sm)
            or (e.ptx and not e.suffix and e.sm <= sm)
            for e in entries
        )
        if not covered:
            raise Refusal(
                f"CMAKE_CUDA_ARCHITECTURES `{text}` has no code for {gpu.label} (sm_{sm}): "
                f"add {sm}-real",
                rule="architectures-miss-gpu",
            )
