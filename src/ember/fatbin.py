"""Which GPU code a CUDA binary carries: a reader for the embedded fatbin.

nvcc embeds device code in a host ELF file (shared library, executable or
object) as a *fatbin*: the `.nv_fatbin` section of linked files, or
`__nv_relfatbin` in relocatable objects built with `-rdc` (section names from
the toolkit's own `include/fatbinary_section.h`). This module lists the native
cubins (`sm_XX`) and the PTX (`compute_XX`) in it, without the CUDA toolkit,
so a build can prove which GPU architectures got native code.

Format (all little-endian). References, read before writing this; none is an
official NVIDIA specification, so every check below is defensive:

* n-eiling/cuda-fatbin-decompression, `fatbin-decompress.h` / `.c`:
  `fat_elf_header`, `fat_text_header` and the flag bits, including the older
  compression flag 0x2000;
* jiegec/fatbinary (Rust crate), `src/lib.rs` and `fatbinary.ksy`: the same
  structs with field names (`options_offset`, `obj_name_offset`, ...);
* GrigoryEvko/nvopen-tools, `fatbin/FORMAT_SPECIFICATION.md`: traversal by
  `entry + header_size + payload_size`, several containers per section,
  variable entry header sizes (64/80/96/112), the zstd compression flag 0x8000;
* LLVM `llvm/BinaryFormat/ELF.h` and `Object/ELFObjectFile.cpp`
  (`getNVPTXCPUName`): where a cubin's ELF `e_flags` keep the SM number.

A section holds one or more *containers*, each starting on its own header::

    u32 magic          0xBA55ED50
    u16 version        1
    u16 header_size    16 (offset of the first entry)
    u64 fat_size       bytes of entries that follow the header

Containers may be separated by zero padding. A container's entries lie back to
back up to `header_size + fat_size`; each entry is a header followed by its
payload (a cubin ELF, PTX text or LTO IR, maybe compressed)::

    off  type  field
    0    u16   kind              1 = PTX, 2 = ELF cubin, 8 = LTO IR (observed)
    2    u16   (0x0101)
    4    u32   header_size       >= 64; payload starts here
    8    u64   payload_size      stored bytes, padded; next entry follows it
    16   u32   compressed_size   real bytes of a compressed payload
    20   u32   options_offset
    24   u16   minor             code version (cubin ABI 1.x, PTX ISA x.y)
    26   u16   major
    28   u32   arch              37 for sm_37 / compute_37
    32   u32   obj_name_offset
    36   u32   obj_name_len
    40   u64   flags             0x1 64-bit, 0x2 debug, 0x10 Linux host,
                                 0x2000 compressed (CUDA 11-12, LZ-style),
                                 0x8000 compressed (zstd, CUDA 12.8+),
                                 0x100000 arch-specific ("a", e.g. sm_90a),
                                 0x200000 family-specific ("f", e.g. sm_100f)
    48   u64   (zero)
    56   u64   uncompressed_size

The "a" and "f" bits were read off CUDA 13.0 nvcc output, where `cuobjdump`
names the same entries `sm_90a` / `sm_100f`; note that cuobjdump prints a
family-specific *cubin* without the "f" (`sm_100`), this reader keeps it.

For an uncompressed cubin the arch in the entry header is cross-checked with
the cubin's own ELF header (`e_machine` EM_CUDA = 190): with EI_ABIVERSION 7
the SM number is the low byte of `e_flags`, with EI_ABIVERSION 8 (CUDA 12.8+)
it is bits 8-15. A disagreement is a FatbinError.

Every size is checked against the bytes that remain before it is used, every
step moves forward by at least one header, so bad data ends in a FatbinError,
never an endless loop or an exception of another kind.
"""

from __future__ import annotations

import io
import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO, Literal

from elftools.elf.elffile import ELFFile

from ember.errors import EmberError

__all__ = [
    "FATBIN_MAGIC",
    "FATBIN_SECTIONS",
    "Coverage",
    "FatbinEntry",
    "FatbinError",
    "GpuCode",
    "coverage",
    "parse_architectures",
    "parse_fatbin",
    "read_entries",
    "read_entries_file",
    "read_gpu_code",
    "read_gpu_code_file",
]

FATBIN_MAGIC = 0xBA55ED50
"""First word of every fatbin container."""

FATBIN_SECTIONS = (".nv_fatbin", "__nv_relfatbin")
"""ELF sections that hold fatbin data: linked files, then relocatable (`-rdc`) objects."""

Kind = Literal["cubin", "ptx", "lto"]
Variant = Literal["", "a", "f"]
Coverage = Literal["cubin", "ptx", "missing"]

_MAGIC_BYTES = struct.pack("<I", FATBIN_MAGIC)
_ELF_MAGIC = b"\x7fELF"
_CONTAINER = struct.Struct("<IHHQ")  # magic, version, header_size, fat_size
# kind, _, header_size, payload_size, compressed_size, options_offset, minor, major,
# arch, obj_name_offset, obj_name_len, flags
_ENTRY = struct.Struct("<HHIQIIHHIIIQ")
_ENTRY_MIN = 64
_KINDS: dict[int, Kind] = {1: "ptx", 2: "cubin", 8: "lto"}

_FLAG_COMPRESSED_LZ = 0x2000
_FLAG_COMPRESSED_ZSTD = 0x8000
_FLAG_ARCH_SPECIFIC = 0x100000
_FLAG_FAMILY_SPECIFIC = 0x200000

_EM_CUDA = 190
_ABI_CUDA_V1 = 7  # SM number in e_flags & 0xff
_ABI_CUDA_V2 = 8  # SM number in (e_flags >> 8) & 0xff
_ARCH_MIN, _ARCH_MAX = 10, 999

_NONZERO = re.compile(rb"[^\x00]")
_NAME = re.compile(r"^(sm|compute)_([0-9]{2,3})([af]?)$")
_CMAKE_ARCH = re.compile(r"^([0-9]{2,3})([a-z]?)(?:-(?:real|virtual))?$")


class FatbinError(EmberError):
    """The bytes are not a readable ELF file or its fatbin data is malformed."""

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        offset: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{message}", hint=hint)
        self.path = path
        self.offset = offset


@dataclass(frozen=True)
class FatbinEntry:
    """One entry of a fatbin: a cubin, PTX or LTO IR for one architecture.

    `size` is the payload as stored (compressed bytes when `compressed`).
    `variant` is "a" (arch-specific, sm_90a) or "f" (family-specific, sm_100f).
    `verified` says the arch was confirmed by the cubin's own ELF `e_flags`
    (only possible for an uncompressed cubin).
    """

    kind: Kind
    arch: int
    compressed: bool
    size: int
    variant: Variant = ""
    verified: bool = False

    @property
    def name(self) -> str:
        """`sm_XX` for a cubin, `compute_XX` for PTX, `lto_XX` for LTO IR."""
        prefix = {"cubin": "sm", "ptx": "compute", "lto": "lto"}[self.kind]
        return f"{prefix}_{self.arch}{self.variant}"


@dataclass(frozen=True)
class GpuCode:
    """The GPU code a binary carries: sorted, unique `sm_XX` cubins and `compute_XX` PTX."""

    cubins: tuple[str, ...] = ()
    ptx: tuple[str, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[FatbinEntry]) -> GpuCode:
        """Summarise entries; LTO IR is left out (it is neither runnable nor JIT-able)."""
        found = list(entries)
        return cls(
            cubins=_sorted_names(e.name for e in found if e.kind == "cubin"),
            ptx=_sorted_names(e.name for e in found if e.kind == "ptx"),
        )

    @property
    def is_empty(self) -> bool:
        """True when the binary carries no GPU code at all."""
        return not self.cubins and not self.ptx

    def to_json(self) -> dict[str, list[str]]:
        """`{"cubins": [...], "ptx": [...]}`, ready for `json.dumps`."""
        return {"cubins": list(self.cubins), "ptx": list(self.ptx)}


def _split_name(name: str) -> tuple[str, int, str]:
    match = _NAME.match(name)
    if match is None:
        raise FatbinError(f"`{name}` is not an sm_XX or compute_XX architecture name")
    return match.group(1), int(match.group(2)), match.group(3)


def _sorted_names(names: Iterable[str]) -> tuple[str, ...]:
    def key(name: str) -> tuple[int, str, str]:
        match = _NAME.match(name)
        if match is None:
            return (0, "", name)
        return (int(match.group(2)), match.group(3), name)

    return tuple(sorted(set(names), key=key))


# --------------------------------------------------------------------------- parsing


def _cubin_sm(payload: bytes | memoryview) -> int | None:
    """The SM number in a CUDA ELF's e_flags, or None if it isn't one we can read."""
    head = bytes(payload[:64])
    if len(head) < 52 or head[:4] != _ELF_MAGIC or head[5] != 1:  # little-endian only
        return None
    elf_class, abi = head[4], head[8]
    (machine,) = struct.unpack_from("<H", head, 18)
    if machine != _EM_CUDA:
        return None
    if elf_class == 2:
        if len(head) < 64:
            return None
        (flags,) = struct.unpack_from("<I", head, 48)
    elif elf_class == 1:
        (flags,) = struct.unpack_from("<I", head, 36)
    else:
        return None
    if abi == _ABI_CUDA_V1:
        return int(flags) & 0xFF
    if abi == _ABI_CUDA_V2:
        return (int(flags) >> 8) & 0xFF
    return None


def _parse_entry(view: memoryview, at: int, end: int, base: int) -> tuple[FatbinEntry | None, int]:
    """Parse the entry at `at` (before `end`); returns it (None for an unknown kind) and
    the offset of the next one."""
    where = base + at
    if at + _ENTRY_MIN > end:
        raise FatbinError(
            f"fatbin entry header at offset {where:#x} is cut off "
            f"({end - at} of {_ENTRY_MIN} bytes)",
            offset=where,
        )
    (kind_code, _, header_size, payload_size, _csize, _opts, _minor, _major, arch, _, _, flags) = (
        _ENTRY.unpack_from(view, at)
    )
    if header_size < _ENTRY_MIN:
        raise FatbinError(
            f"fatbin entry at offset {where:#x} has a header size of {header_size} bytes "
            f"(at least {_ENTRY_MIN})",
            offset=where,
        )
    stop = at + header_size + payload_size
    if stop > end:
        raise FatbinError(
            f"fatbin entry at offset {where:#x} runs {stop - end} bytes past its container",
            offset=where,
        )
    kind = _KINDS.get(kind_code)
    if kind is None:
        return None, stop  # a kind we don't know: step over it, claim nothing
    if not _ARCH_MIN <= arch <= _ARCH_MAX:
        raise FatbinError(
            f"fatbin entry at offset {where:#x} names architecture {arch}, not a CUDA SM number",
            offset=where,
        )
    compressed = bool(flags & (_FLAG_COMPRESSED_LZ | _FLAG_COMPRESSED_ZSTD))
    variant: Variant = ""
    if flags & _FLAG_ARCH_SPECIFIC:
        variant = "a"
    elif flags & _FLAG_FAMILY_SPECIFIC:
        variant = "f"
    verified = False
    if kind == "cubin" and not compressed:
        sm = _cubin_sm(view[at + header_size : stop])
        if sm is not None:
            if sm != arch:
                raise FatbinError(
                    f"fatbin entry at offset {where:#x} says sm_{arch} but its cubin's "
                    f"ELF header says sm_{sm}",
                    offset=where,
                )
            verified = True
    entry = FatbinEntry(
        kind=kind,
        arch=arch,
        compressed=compressed,
        size=payload_size,
        variant=variant,
        verified=verified,
    )
    return entry, stop


def parse_fatbin(blob: bytes | bytearray | memoryview, *, base: int = 0) -> tuple[FatbinEntry, ...]:
    """Parse fatbin data (a `.nv_fatbin` section's bytes, or a `.fatbin` file).

    Walks every container in `blob` (zero padding between them is skipped) and
    returns their entries in order. `base` is added to offsets in error messages.
    Raises FatbinError on anything malformed; empty input gives an empty tuple.
    """
    view = memoryview(blob).cast("B")
    size = len(view)
    entries: list[FatbinEntry] = []
    pos = 0
    while pos < size:
        if view[pos] == 0:  # padding between (or after) containers
            match = _NONZERO.search(view, pos)
            if match is None:
                break
            pos = match.start()
        where = base + pos
        if size - pos < _CONTAINER.size:
            raise FatbinError(
                f"fatbin header at offset {where:#x} is cut off "
                f"({size - pos} of {_CONTAINER.size} bytes)",
                offset=where,
            )
        magic, version, header_size, fat_size = _CONTAINER.unpack_from(view, pos)
        if magic != FATBIN_MAGIC:
            raise FatbinError(
                f"no fatbin magic at offset {where:#x} (found {magic:#010x}, "
                f"expected {FATBIN_MAGIC:#010x})",
                offset=where,
            )
        if version != 1:
            raise FatbinError(
                f"fatbin at offset {where:#x} has version {version}; only version 1 is known",
                offset=where,
            )
        if header_size < _CONTAINER.size:
            raise FatbinError(
                f"fatbin at offset {where:#x} has a header size of {header_size} bytes "
                f"(at least {_CONTAINER.size})",
                offset=where,
            )
        end = pos + header_size + fat_size
        if end > size:
            raise FatbinError(
                f"fatbin at offset {where:#x} declares {header_size + fat_size} bytes "
                f"but only {size - pos} remain (truncated?)",
                offset=where,
            )
        at = pos + header_size
        while at < end:
            entry, at = _parse_entry(view, at, end, base)
            if entry is not None:
                entries.append(entry)
        pos = end
    return tuple(entries)


def _read_section(stream: BinaryIO, offset: int, size: int) -> bytes:
    stream.seek(offset)
    data = stream.read(size)
    if len(data) != size:
        raise FatbinError(f"fatbin section at offset {offset:#x} is cut off", offset=offset)
    return data


def _entries_from_stream(stream: BinaryIO, total: int) -> tuple[FatbinEntry, ...]:
    stream.seek(0)
    head = stream.read(64)
    if head[:4] == _MAGIC_BYTES:  # a bare .fatbin file (nvcc -fatbin)
        stream.seek(0)
        return parse_fatbin(stream.read())
    if head[:4] != _ELF_MAGIC:
        raise FatbinError(
            "not an ELF file or a fatbin" if head else "empty input, not an ELF file",
            hint="give a CUDA shared library, executable, object, cubin or .fatbin",
        )
    sm = _cubin_sm(head)
    if sm is not None:  # a bare cubin (nvcc -cubin): itself native code for one SM
        if not _ARCH_MIN <= sm <= _ARCH_MAX:
            raise FatbinError(f"cubin names architecture {sm}, not a CUDA SM number")
        return (FatbinEntry(kind="cubin", arch=sm, compressed=False, size=total, verified=True),)
    found: list[tuple[int, int]] = []
    try:
        elf = ELFFile(stream)
        # Bound the walk by the file itself: extended numbering lets e_shnum claim 2**64.
        table_end = int(elf["e_shoff"]) + elf.num_sections() * int(elf["e_shentsize"])
        if table_end > total:
            raise FatbinError(
                f"the section header table ends at offset {table_end:#x}, "
                f"past the end of the file ({total} bytes)"
            )
        for section in elf.iter_sections():
            if section.name not in FATBIN_SECTIONS or section["sh_type"] == "SHT_NOBITS":
                continue
            offset, size = int(section["sh_offset"]), int(section["sh_size"])
            if offset + size > total:
                raise FatbinError(
                    f"section {section.name} (offset {offset:#x}, {size} bytes) "
                    f"runs past the end of the file ({total} bytes)",
                    offset=offset,
                )
            found.append((offset, size))
    except FatbinError:
        raise
    except Exception as exc:  # pyelftools raises many kinds on hostile input
        raise FatbinError(f"malformed ELF file: {exc or type(exc).__name__}") from exc
    entries: list[FatbinEntry] = []
    for offset, size in found:
        entries.extend(parse_fatbin(_read_section(stream, offset, size), base=offset))
    return tuple(entries)


def read_entries(data: bytes | bytearray) -> tuple[FatbinEntry, ...]:
    """Every fatbin entry in an ELF file's bytes (or a bare .fatbin or cubin).

    A host ELF without fatbin sections gives an empty tuple; bytes that are not
    ELF, and malformed fatbin data, raise FatbinError.
    """
    return _entries_from_stream(io.BytesIO(bytes(data)), len(data))


def read_entries_file(path: str | os.PathLike[str]) -> tuple[FatbinEntry, ...]:
    """`read_entries` on a file; only the headers and fatbin sections are read."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as stream:
            total = os.fstat(stream.fileno()).st_size
            return _entries_from_stream(stream, total)
    except FatbinError as exc:
        raise FatbinError(exc.message, path=name, offset=exc.offset, hint=exc.hint) from exc
    except OSError as exc:
        raise FatbinError(f"cannot read: {exc.strerror or exc}", path=name) from exc


def read_gpu_code(data: bytes | bytearray) -> GpuCode:
    """The cubins and PTX an ELF file's bytes carry; empty when it has no fatbin."""
    return GpuCode.from_entries(read_entries(data))


def read_gpu_code_file(path: str | os.PathLike[str]) -> GpuCode:
    """The cubins and PTX a file carries (see `read_gpu_code`)."""
    return GpuCode.from_entries(read_entries_file(path))


# --------------------------------------------------------------------------- targets


def _ptx_runs_on(arch: int, variant: str, target: int) -> bool:
    """PTX compute_XX JITs for any GPU at or above XX; "a" only for XX itself, "f" only
    within XX's major version."""
    if variant == "a":
        return target == arch
    if variant == "f":
        return target // 10 == arch // 10 and target >= arch
    return target >= arch


def coverage(code: GpuCode, targets: Iterable[int]) -> dict[int, Coverage]:
    """For each target SM (e.g. 37): how a GPU of exactly that architecture gets code.

    "cubin": a native cubin for that SM is present (any "a"/"f" variant counts);
    "ptx": no such cubin, but PTX it can JIT at start (compute_XX with XX <= target);
    "missing": neither. Cubins are matched exactly (the build's request was
    honoured), not by the looser same-major binary compatibility.
    """
    cubin_archs = {_split_name(name)[1] for name in code.cubins}
    ptx = [_split_name(name)[1:] for name in code.ptx]
    result: dict[int, Coverage] = {}
    for target in targets:
        if target in cubin_archs:
            result[target] = "cubin"
        elif any(_ptx_runs_on(arch, variant, target) for arch, variant in ptx):
            result[target] = "ptx"
        else:
            result[target] = "missing"
    return result


def parse_architectures(value: str) -> list[int]:
    """The SM numbers in a `CMAKE_CUDA_ARCHITECTURES` value, sorted and unique.

    `"37-real;86-real"` -> `[37, 86]`; `"90a-real"` -> `[90]`; "" or "OFF" -> `[]`.
    The symbolic values ("all", "all-major", "native") name no fixed list and raise
    FatbinError, as does anything else that is not an architecture.
    """
    text = value.strip()
    if text.upper() in ("", "OFF", "FALSE", "0"):
        return []
    archs: set[int] = set()
    for raw in re.split(r"[;,\s]+", text):
        item = raw.strip()
        if not item:
            continue
        if item.lower() in ("all", "all-major", "native"):
            raise FatbinError(
                f"CMAKE_CUDA_ARCHITECTURES `{item}` names no fixed architecture list",
                hint='give explicit numbers, e.g. "37-real;86-real"',
            )
        match = _CMAKE_ARCH.match(item)
        if match is None:
            raise FatbinError(
                f"`{item}` in CMAKE_CUDA_ARCHITECTURES is not an architecture",
                hint='expected e.g. "37", "86-real", "90a-virtual"',
            )
        archs.add(int(match.group(1)))
    return sorted(archs)
