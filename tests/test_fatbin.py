"""ember.fatbin: read the GPU code embedded in CUDA binaries.

Real files are compiled once per module by nvcc (PATH, $CUDA_HOME/bin or
/usr/local/cuda/bin; skipped without one) and, where cuobjdump can be found
(PATH, next to nvcc, the `nvidia-cuda-cuobjdump` wheel, or $EMBER_CUOBJDUMP),
read by the toolkit's own tool too: both readers must list the same entries.
Synthetic fatbins cover what this toolkit cannot build (sm_37, old cubin ABI)
and every malformed-data path; hypothesis checks that no input raises anything
but FatbinError.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ember.errors import EmberError
from ember.fatbin import (
    FATBIN_MAGIC,
    FatbinEntry,
    FatbinError,
    GpuCode,
    coverage,
    parse_architectures,
    parse_fatbin,
    read_entries,
    read_entries_file,
    read_gpu_code,
    read_gpu_code_file,
)

# --------------------------------------------------------------------------- tools


def _cuda_bins() -> list[Path]:
    roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    return [Path(root) / "bin" for root in roots if root]


def _find_nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    for folder in _cuda_bins():
        if (folder / "nvcc").is_file():
            return str(folder / "nvcc")
    return None


def _find_cuobjdump(nvcc: str | None) -> str | None:
    override = os.environ.get("EMBER_CUOBJDUMP")
    if override:
        return override
    found = shutil.which("cuobjdump")
    if found:
        return found
    folders = _cuda_bins()
    if nvcc:
        folders.insert(0, Path(nvcc).parent)
    for folder in folders:
        if (folder / "cuobjdump").is_file():
            return str(folder / "cuobjdump")
    # The nvidia-cuda-cuobjdump wheel: nvidia/cu13/bin/ or nvidia/cuda_cuobjdump/bin/.
    spec = importlib.util.find_spec("nvidia")
    for location in (spec.submodule_search_locations or []) if spec else []:
        for candidate in sorted(Path(location).glob("*/bin/cuobjdump")):
            return str(candidate)
    return None


NVCC = _find_nvcc()
CUOBJDUMP = _find_cuobjdump(NVCC)
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="no nvcc on PATH or in /usr/local/cuda/bin")

KERNEL = """
__global__ void add(float *a, const float *b, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) a[i] += b[i];
}
extern "C" void launch(float *a, const float *b, int n) { add<<<(n + 255) / 256, 256>>>(a, b, n); }
"""

SHARED = ["-shared", "-Xcompiler", "-fPIC"]
GENCODE_MULTI = [
    "-gencode=arch=compute_75,code=sm_75",
    "-gencode=arch=compute_86,code=sm_86",
    "-gencode=arch=compute_86,code=compute_86",
]
BUILDS: dict[str, list[str]] = {
    "multi.so": [*SHARED, *GENCODE_MULTI],
    "ptx_only.so": [*SHARED, "-gencode=arch=compute_75,code=compute_75"],
    "compressed.so": [*SHARED, "-Xfatbin=-compress-all", *GENCODE_MULTI],
    "arch_specific.so": [
        *SHARED,
        "-no-compress",
        "-gencode=arch=compute_90a,code=sm_90a",
        "-gencode=arch=compute_89,code=compute_89",
    ],
    "relocatable.o": [
        "-c",
        "-rdc=true",
        "-Xcompiler",
        "-fPIC",
        "-gencode=arch=compute_75,code=sm_75",
    ],
    "kernel.fatbin": ["-fatbin", "-gencode=arch=compute_75,code=sm_75"],
    "kernel.cubin": ["-cubin", "-arch=sm_86"],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Compile every artefact once, in parallel; plus a plain gcc .so without a fatbin."""
    if NVCC is None:
        pytest.skip("no nvcc on PATH or in /usr/local/cuda/bin")
    work = tmp_path_factory.mktemp("fatbin")
    source = work / "kernel.cu"
    source.write_text(KERNEL)
    plain_c = work / "plain.c"
    plain_c.write_text("int answer(void) { return 42; }\n")
    cc = shutil.which("cc") or shutil.which("gcc") or "gcc"
    commands = {
        name: [NVCC, *flags, "-o", str(work / name), str(source)] for name, flags in BUILDS.items()
    }
    commands["plain.so"] = [cc, "-shared", "-fPIC", "-o", str(work / "plain.so"), str(plain_c)]

    def run(item: tuple[str, list[str]]) -> tuple[str, subprocess.CompletedProcess[str]]:
        return item[0], subprocess.run(
            item[1], capture_output=True, text=True, cwd=work, check=False
        )

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for name, proc in pool.map(run, commands.items()):
            assert proc.returncode == 0, f"building {name} failed:\n{proc.stderr}"
    return {name: work / name for name in commands}


def cuobjdump_list(path: Path) -> tuple[list[str], list[str]]:
    """cuobjdump's cubins (sm_XX, one per entry) and PTX (as compute_XX) for a file."""
    assert CUOBJDUMP is not None
    proc = subprocess.run(
        [CUOBJDUMP, "--list-elf", "--list-ptx", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        assert "does not contain device code" in proc.stderr, proc.stderr
        return [], []
    cubins, ptx = [], []
    for line in proc.stdout.splitlines():
        if match := re.match(r"^ELF file\s+\d+:\s+.*\.(sm_\d+[a-z]?)\.cubin$", line.strip()):
            cubins.append(match.group(1))
        elif match := re.match(r"^PTX file\s+\d+:\s+.*\.sm_(\d+[a-z]?)\.ptx$", line.strip()):
            ptx.append(f"compute_{match.group(1)}")
    return cubins, ptx


# --------------------------------------------------------------------------- real files


@needs_nvcc
def test_multi_arch_shared_library(built: dict[str, Path]) -> None:
    code = read_gpu_code_file(built["multi.so"])
    assert code == GpuCode(cubins=("sm_75", "sm_86"), ptx=("compute_86",))
    assert code.to_json() == {"cubins": ["sm_75", "sm_86"], "ptx": ["compute_86"]}
    assert read_gpu_code(built["multi.so"].read_bytes()) == code
    assert coverage(code, [37, 75, 80, 86, 90]) == {
        37: "missing",
        75: "cubin",
        80: "missing",
        86: "cubin",
        90: "ptx",
    }
    entries = read_entries_file(built["multi.so"])
    # nvcc's own link stub adds a second container, so each cubin arch is there twice.
    assert sorted(e.name for e in entries) == ["compute_86", "sm_75", "sm_75", "sm_86", "sm_86"]
    for entry in entries:
        if entry.kind == "cubin" and not entry.compressed:
            assert entry.verified, entry  # the cubin's own e_flags agreed


@needs_nvcc
def test_ptx_only_build(built: dict[str, Path]) -> None:
    code = read_gpu_code_file(built["ptx_only.so"])
    assert code == GpuCode(cubins=(), ptx=("compute_75",))
    assert coverage(code, [70, 75, 86]) == {70: "missing", 75: "ptx", 86: "ptx"}


@needs_nvcc
def test_compressed_entries_still_list_their_archs(built: dict[str, Path]) -> None:
    entries = read_entries_file(built["compressed.so"])
    assert entries
    assert all(e.compressed for e in entries)
    assert not any(e.verified for e in entries)
    code = GpuCode.from_entries(entries)
    assert code == GpuCode(cubins=("sm_75", "sm_86"), ptx=("compute_86",))


@needs_nvcc
def test_arch_specific_variant_and_uncompressed_cubins_verified(built: dict[str, Path]) -> None:
    entries = read_entries_file(built["arch_specific.so"])
    assert GpuCode.from_entries(entries) == GpuCode(cubins=("sm_90a",), ptx=("compute_89",))
    cubins = [e for e in entries if e.kind == "cubin"]
    assert cubins
    assert all(e.variant == "a" and not e.compressed and e.verified for e in cubins)


@needs_nvcc
def test_relocatable_object_reads_nv_relfatbin(built: dict[str, Path]) -> None:
    assert read_gpu_code_file(built["relocatable.o"]) == GpuCode(cubins=("sm_75",))


@needs_nvcc
def test_bare_fatbin_and_cubin_files(built: dict[str, Path]) -> None:
    assert read_gpu_code_file(built["kernel.fatbin"]) == GpuCode(cubins=("sm_75",))
    (entry,) = read_entries_file(built["kernel.cubin"])
    assert (entry.name, entry.verified) == ("sm_86", True)


@needs_nvcc
def test_plain_gcc_library_has_no_gpu_code(built: dict[str, Path]) -> None:
    code = read_gpu_code_file(built["plain.so"])
    assert code == GpuCode()
    assert code.is_empty
    assert code.to_json() == {"cubins": [], "ptx": []}


@needs_nvcc
@pytest.mark.parametrize("cut", [0.25, 0.5, 0.9, 0.999])
def test_truncated_library_is_a_fatbin_error(built: dict[str, Path], cut: float) -> None:
    data = built["multi.so"].read_bytes()
    with pytest.raises(FatbinError):
        read_gpu_code(data[: int(len(data) * cut)])


@needs_nvcc
def test_corrupt_fat_size_inside_real_library(built: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(built["multi.so"].read_bytes())
    at = data.find(struct.pack("<I", FATBIN_MAGIC))
    struct.pack_into("<Q", data, at + 8, 2**63)  # fat_size far past the section
    with pytest.raises(FatbinError, match="truncated"):
        read_gpu_code(bytes(data))
    broken = tmp_path / "broken.so"
    broken.write_bytes(data)
    with pytest.raises(FatbinError, match=str(broken)):
        read_gpu_code_file(broken)


@needs_nvcc
def test_section_count_past_the_file_is_refused(built: dict[str, Path]) -> None:
    """ELF extended numbering (e_shnum = 0) could claim 2**40 sections: refused, not walked."""
    data = bytearray(built["plain.so"].read_bytes())
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    struct.pack_into("<H", data, 0x3C, 0)
    struct.pack_into("<Q", data, shoff + 0x20, 2**40)
    with pytest.raises(FatbinError, match="section header table"):
        read_gpu_code(bytes(data))


@needs_nvcc
@pytest.mark.skipif(CUOBJDUMP is None, reason="no cuobjdump (install nvidia-cuda-cuobjdump)")
@pytest.mark.parametrize(
    "name",
    [
        "multi.so",
        "ptx_only.so",
        "compressed.so",
        "arch_specific.so",
        "relocatable.o",
        "kernel.fatbin",
        "kernel.cubin",
        "plain.so",
    ],
)
def test_agrees_with_cuobjdump(built: dict[str, Path], name: str) -> None:
    their_cubins, their_ptx = cuobjdump_list(built[name])
    entries = read_entries_file(built[name])
    assert sorted(e.name for e in entries if e.kind == "cubin") == sorted(their_cubins)
    assert sorted(e.name for e in entries if e.kind == "ptx") == sorted(their_ptx)


# --------------------------------------------------------------------------- synthetic data


def cubin_elf(sm: int, abi: int = 7) -> bytes:
    """A minimal ELF64 header of a CUDA cubin for `sm` under cubin ABI 7 or 8."""
    flags = (sm << 16) | 0x500 | sm if abi == 7 else 0x6000000 | (sm << 8) | 0x04
    ident = b"\x7fELF" + bytes([2, 1, 1, 0x33 if abi == 7 else 0x41, abi]) + b"\0" * 7
    return ident + struct.pack("<HHIQQQIHHHHHH", 2, 190, 1, 0, 0, 0, flags, 64, 0, 0, 64, 0, 0)


def entry(
    *,
    kind: int = 2,
    arch: int = 37,
    payload: bytes = b"",
    flags: int = 0x11,
    header_size: int = 64,
    payload_size: int | None = None,
) -> bytes:
    size = len(payload) if payload_size is None else payload_size
    head = struct.pack(
        "<HHIQIIHHIIIQQQ", kind, 0x0101, header_size, size, 0, 0, 8, 1, arch, 0, 0, flags, 0, 0
    )
    return head + b"\0" * max(0, header_size - 64) + payload


def container(
    *entries: bytes, version: int = 1, header_size: int = 16, fat_size: int | None = None
) -> bytes:
    body = b"".join(entries)
    size = len(body) if fat_size is None else fat_size
    return (
        struct.pack("<IHHQ", FATBIN_MAGIC, version, header_size, size)
        + b"\0" * (header_size - 16)
        + body
    )


def test_k80_cubin_old_abi_is_read_and_verified() -> None:
    (found,) = parse_fatbin(container(entry(arch=37, payload=cubin_elf(37, abi=7))))
    assert found == FatbinEntry(kind="cubin", arch=37, compressed=False, size=64, verified=True)
    assert found.name == "sm_37"


def test_new_abi_cubin_is_verified() -> None:
    (found,) = parse_fatbin(container(entry(arch=120, payload=cubin_elf(120, abi=8))))
    assert found.verified
    assert found.name == "sm_120"


def test_cubin_header_disagreeing_with_elf_flags_is_an_error() -> None:
    with pytest.raises(FatbinError, match="says sm_37 but its cubin's ELF header says sm_35"):
        parse_fatbin(container(entry(arch=37, payload=cubin_elf(35))))


def test_several_containers_with_padding_and_kinds() -> None:
    blob = (
        container()  # an empty container, as nvcc writes for PTX-only builds
        + container(
            entry(arch=37, payload=cubin_elf(37)),
            entry(kind=1, arch=37, header_size=80, payload=b".version 7.0\0\0\0\0"),
        )
        + b"\0" * 24  # padding between containers
        + container(
            entry(kind=8, arch=50, payload=b"lto-ir\0\0"),  # LTO IR: listed, not runnable
            entry(kind=0x40, arch=0, payload=b"????????"),  # unknown kind: stepped over
            entry(arch=50, flags=0x8011, payload=b"\x28\xb5\x2f\xfd" + b"z" * 4),  # zstd
            entry(kind=1, arch=35, flags=0x2011, payload=b"lz" * 4),  # old compression
        )
        + b"\0" * 8
    )
    found = parse_fatbin(blob)
    assert [(e.name, e.compressed) for e in found] == [
        ("sm_37", False),
        ("compute_37", False),
        ("lto_50", False),
        ("sm_50", True),
        ("compute_35", True),
    ]
    assert GpuCode.from_entries(found) == GpuCode(
        cubins=("sm_37", "sm_50"), ptx=("compute_35", "compute_37")
    )


def test_variant_flags() -> None:
    found = parse_fatbin(
        container(
            entry(arch=90, flags=0x100011, payload=cubin_elf(90)),
            entry(kind=1, arch=100, flags=0x208011, payload=b"x" * 8),
        )
    )
    assert [e.name for e in found] == ["sm_90a", "compute_100f"]


def test_empty_input_gives_no_entries() -> None:
    assert parse_fatbin(b"") == ()
    assert parse_fatbin(b"\0" * 64) == ()


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x50\xed\x55\xba\x01\x00", "header at offset 0x0 is cut off"),
        (b"garbage!" * 4, "no fatbin magic"),
        (container(version=2), "version 2"),
        (struct.pack("<IHHQ", FATBIN_MAGIC, 1, 4, 0), "header size of 4"),
        (container(fat_size=2**64 - 1), "truncated"),
        (container(entry(arch=37)[:40], fat_size=40), "entry header at offset 0x10 is cut off"),
        (container(entry(header_size=8) + b"\0" * 56), "header size of 8 bytes"),
        (container(entry(payload_size=8)), "runs 8 bytes past its container"),
        (container(entry(arch=0, payload=b"x" * 8)), "architecture 0"),
        (container(entry(arch=37, payload_size=2**64 - 1)), "past its container"),
        (
            container(entry(payload=cubin_elf(37))) + b"\0\0\x01" + b"\0" * 20,
            "no fatbin magic at offset 0x92",
        ),
    ],
)
def test_malformed_fatbin_is_a_typed_error(blob: bytes, message: str) -> None:
    with pytest.raises(FatbinError, match=re.escape(message)):
        parse_fatbin(blob)


def test_fatbin_error_is_an_ember_error_with_offset() -> None:
    with pytest.raises(FatbinError) as info:
        parse_fatbin(b"\0" * 16 + b"not-a-fatbin-at-all")
    assert isinstance(info.value, EmberError)
    assert info.value.offset == 16


@pytest.mark.parametrize(
    "data", [b"", b"abc", b"\x7fELF", b"\x7fELF" + b"\xff" * 60, b"MZ" + b"\0" * 200]
)
def test_non_elf_bytes_are_a_fatbin_error(data: bytes) -> None:
    with pytest.raises(FatbinError):
        read_gpu_code(data)


def test_missing_file_is_a_fatbin_error(tmp_path: Path) -> None:
    with pytest.raises(FatbinError, match="cannot read"):
        read_gpu_code_file(tmp_path / "nope.so")


@pytest.mark.skipif(
    shutil.which("objcopy") is None or shutil.which("cc") is None, reason="no cc/objcopy"
)
def test_sm37_fatbin_section_in_a_host_elf(tmp_path: Path) -> None:
    """The K80 case end to end: an sm_37 cubin + compute_37 PTX in a host library's .nv_fatbin."""
    (tmp_path / "a.c").write_text("int f(void) { return 1; }\n")
    lib = tmp_path / "a.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(tmp_path / "a.c")], check=True)
    blob = tmp_path / "blob"
    blob.write_bytes(
        container(entry(arch=37, payload=cubin_elf(37)), entry(kind=1, arch=37, payload=b"x" * 8))
    )
    subprocess.run(
        [
            "objcopy",
            "--add-section",
            f".nv_fatbin={blob}",
            "--set-section-flags",
            ".nv_fatbin=alloc,readonly",
            str(lib),
        ],
        check=True,
    )
    code = read_gpu_code_file(lib)
    assert code == GpuCode(cubins=("sm_37",), ptx=("compute_37",))
    assert coverage(code, [37, 35, 50]) == {37: "cubin", 35: "missing", 50: "ptx"}


# --------------------------------------------------------------------------- summaries


def test_gpu_code_sorts_numerically_and_dedupes() -> None:
    entries = [
        FatbinEntry(kind="cubin", arch=arch, compressed=False, size=1)
        for arch in (100, 75, 100, 37)
    ] + [FatbinEntry(kind="ptx", arch=120, compressed=True, size=1)]
    assert GpuCode.from_entries(entries) == GpuCode(
        cubins=("sm_37", "sm_75", "sm_100"), ptx=("compute_120",)
    )


def test_coverage_rules() -> None:
    k80 = GpuCode(cubins=("sm_37",), ptx=("compute_37",))
    assert coverage(k80, [37, 35, 86]) == {37: "cubin", 35: "missing", 86: "ptx"}
    special = GpuCode(cubins=("sm_90a",), ptx=("compute_90a", "compute_100f"))
    assert coverage(special, [90, 100, 103, 120]) == {
        90: "cubin",
        100: "ptx",
        103: "ptx",
        120: "missing",
    }
    assert coverage(GpuCode(), [37]) == {37: "missing"}
    with pytest.raises(FatbinError):
        coverage(GpuCode(cubins=("gfx90a",)), [90])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("37-real;86-real", [37, 86]),
        ("86;37", [37, 86]),
        ("50-virtual;50-real;61", [50, 61]),
        ("90a-real;100f", [90, 100]),
        (" 37 ; 52 ", [37, 52]),
        ("", []),
        ("OFF", []),
    ],
)
def test_parse_architectures(value: str, expected: list[int]) -> None:
    assert parse_architectures(value) == expected


@pytest.mark.parametrize("value", ["all", "all-major", "native", "sm_37", "37-fake", "3.7"])
def test_parse_architectures_rejects(value: str) -> None:
    with pytest.raises(FatbinError):
        parse_architectures(value)


# --------------------------------------------------------------------------- properties


def _fatbin_or_error(call: Callable[[], object]) -> None:
    try:
        call()
    except FatbinError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_never_crash_the_elf_reader(data: bytes) -> None:
    _fatbin_or_error(lambda: read_gpu_code(data))
    _fatbin_or_error(lambda: read_gpu_code(b"\x7fELF" + data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash_the_fatbin_parser(data: bytes) -> None:
    _fatbin_or_error(lambda: parse_fatbin(data))
    _fatbin_or_error(
        lambda: parse_fatbin(struct.pack("<IHHQ", FATBIN_MAGIC, 1, 16, len(data)) + data)
    )


_SAMPLE = container(
    entry(arch=37, payload=cubin_elf(37)),
    entry(kind=1, arch=37, header_size=80, payload=b"x" * 16),
) + container(entry(arch=86, payload=cubin_elf(86, abi=8)))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(_SAMPLE) - 1), st.integers(0, 255)), max_size=6),
    st.integers(0, len(_SAMPLE)),
)
def test_mutated_fatbin_never_crashes(edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_SAMPLE)
    for at, value in edits:
        data[at] = value
    _fatbin_or_error(lambda: parse_fatbin(bytes(data[:cut])))


@needs_nvcc
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_mutated_real_library_never_crashes(built: dict[str, Path], data: st.DataObject) -> None:
    original = built["multi.so"].read_bytes()
    (shoff,) = struct.unpack_from("<Q", original, 0x28)
    fatbin_at = original.find(struct.pack("<I", FATBIN_MAGIC))
    spot = st.one_of(
        st.integers(0, 63),  # ELF header
        st.integers(shoff, len(original) - 1),  # section header table
        st.integers(fatbin_at, fatbin_at + 0x1A00),  # the fatbin
    )
    mutated = bytearray(original)
    for at in data.draw(st.lists(spot, min_size=1, max_size=4)):
        mutated[at] = data.draw(st.integers(0, 255))
    result: list[tuple[FatbinEntry, ...]] = []
    _fatbin_or_error(lambda: result.append(read_entries(bytes(mutated))))
    for found in result:
        assert all(isinstance(e, FatbinEntry) for e in found)
