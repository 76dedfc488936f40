"""The compatibility tables: complete, cited, consistent, and matched forgivingly."""

from __future__ import annotations

import itertools

import pytest

from ember.compat import Gpu, known_gpus, lookup_gpu
from ember.compat.facts import Architecture, GpuRecord, Toolkit, Trap, facts
from ember.errors import ResolveError


def test_every_row_cites_a_source() -> None:
    data = facts()
    rows: list[Toolkit | Architecture | GpuRecord | Trap] = [
        *data.toolkits,
        *data.architectures,
        *data.gpus,
        *data.traps,
    ]
    assert rows
    for row in rows:
        assert row.sources, row
        assert all(s.strip() for s in row.sources), row


def test_toolkits_match_the_facts_file() -> None:
    data = facts()
    by_version = {t.version: t for t in data.toolkits}
    assert "12.7" not in by_version
    k = by_version["11.4"]
    assert (k.sm_min, k.sm_max, str(k.min_driver), str(k.minor_compat_driver), k.gcc_max) == (
        35,
        87,
        "470.42.01",
        "450.80.02",
        10,
    )
    assert by_version["10.2"].minor_compat_driver is None
    assert by_version["11.8"].sm_max == 90
    assert by_version["12.0"].sm_min == 50
    assert by_version["12.8"].sm_max_label == "120a"
    assert by_version["13.0"].sm_min == 75
    assert [
        by_version[v].gcc_max for v in ("10.2", "11.0", "11.5", "12.0", "12.4", "12.8", "13.0")
    ] == [8, 9, 11, 12, 13, 14, 15]
    assert by_version["11.5"].deprecates(50) and not by_version["11.6"].deprecates(50)
    assert by_version["12.8"].deprecates(70) and not by_version["12.8"].deprecates(75)


def test_toolkits_are_ordered_and_drivers_grow() -> None:
    toolkits = facts().toolkits
    assert [t.key for t in toolkits] == sorted(t.key for t in toolkits)
    drivers = [t.min_driver for t in toolkits]
    assert all(a < b for a, b in itertools.pairwise(drivers))


def test_architecture_lifetimes_agree_with_toolkit_ranges() -> None:
    """Two sources, one answer: the toolkit sm ranges and NVIDIA's last-toolkit column."""
    data = facts()
    newest = data.toolkits[-1]
    for arch in data.architectures:
        by_range = [t for t in data.toolkits if t.in_range(arch.sm)]
        supported = [t for t in data.toolkits if data.supports(t, arch)]
        assert supported, arch.cc
        if arch.last_toolkit == "current":
            assert supported[-1] is newest, arch.cc
        elif "renamed" not in arch.note:
            assert by_range[-1] is supported[-1], arch.cc
            family = arch.last_toolkit.split(".")
            assert str(supported[-1].major) == family[0], arch.cc
        if arch.first_toolkit is not None:
            assert supported[0].version == arch.first_toolkit, arch.cc


def test_at_least_sixty_gpus_from_kepler_to_blackwell() -> None:
    gpus = known_gpus()
    assert len(gpus) >= 60
    architectures = {g.architecture for g in gpus}
    assert {
        "Kepler",
        "Maxwell",
        "Pascal",
        "Volta",
        "Turing",
        "Ampere",
        "Ada",
        "Hopper",
        "Blackwell",
    } <= architectures
    assert {"data-center", "workstation", "geforce"} <= {g.segment for g in gpus}
    assert len({g.name for g in gpus}) == len(gpus)


def test_every_gpu_finds_itself() -> None:
    for gpu in known_gpus():
        assert lookup_gpu(gpu.name) == gpu
        assert lookup_gpu(gpu.name.upper()) == gpu


@pytest.mark.parametrize(
    ("text", "name", "cc"),
    [
        ("K80", "Tesla K80", "3.7"),
        ("tesla k80", "Tesla K80", "3.7"),
        ("NVIDIA Tesla K80", "Tesla K80", "3.7"),
        ("  Tesla-K80 ", "Tesla K80", "3.7"),
        ("Tesla K40m", "Tesla K40", "3.5"),
        ("NVIDIA A100-SXM4-40GB", "NVIDIA A100", "8.0"),
        ("Tesla V100-SXM2-16GB", "Tesla V100", "7.0"),
        ("Tesla P100-PCIE-16GB", "Tesla P100", "6.0"),
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100", "9.0"),
        ("NVIDIA GeForce RTX 3090", "GeForce RTX 3090", "8.6"),
        ("rtx3090", "GeForce RTX 3090", "8.6"),
        ("3090", "GeForce RTX 3090", "8.6"),
        ("GTX 1080 Ti", "GeForce GTX 1080 Ti", "6.1"),
        ("A6000", "NVIDIA RTX A6000", "8.6"),
        ("RTX 6000 Ada", "NVIDIA RTX 6000 Ada Generation", "8.9"),
        ("Quadro RTX 6000", "Quadro RTX 6000", "7.5"),
        ("TITAN Xp", "NVIDIA TITAN Xp", "6.1"),
        ("RTX 5090", "GeForce RTX 5090", "12.0"),
        ("T4", "Tesla T4", "7.5"),
    ],
)
def test_names_match_forgivingly(text: str, name: str, cc: str) -> None:
    gpu = lookup_gpu(text)
    assert (gpu.name, gpu.compute_capability) == (name, cc)


@pytest.mark.parametrize(
    ("text", "cc", "arch"),
    [
        ("3.7", "3.7", "Kepler"),
        ("37", "3.7", "Kepler"),
        ("sm_37", "3.7", "Kepler"),
        ("compute_37", "3.7", "Kepler"),
        ("SM86", "8.6", "Ampere"),
        ("12.0", "12.0", "Blackwell"),
        ("120", "12.0", "Blackwell"),
        ("9.0", "9.0", "Hopper"),
    ],
)
def test_compute_capabilities(text: str, cc: str, arch: str) -> None:
    gpu = lookup_gpu(text)
    assert isinstance(gpu, Gpu)
    assert (gpu.compute_capability, gpu.architecture, gpu.generic) == (cc, arch, True)


def test_k80_record() -> None:
    gpu = lookup_gpu("K80")
    assert (gpu.architecture, gpu.last_toolkit, gpu.newest_toolkit, gpu.last_driver_branch) == (
        "Kepler",
        "11.x",
        "11.8",
        "R470",
    )
    assert gpu.sm == 37


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("Tesla K8", "closest known names: Tesla K80"),
        ("RTX 3089", "GeForce RTX 3080"),
        ("titan", "ambiguous"),
        ("3.8", "unknown compute capability"),
        ("", "empty GPU name"),
        ("zzzzzz", "see `ember gpus`"),
    ],
)
def test_unknown_names(text: str, says: str) -> None:
    with pytest.raises(ResolveError) as info:
        lookup_gpu(text)
    assert says in str(info.value)


def test_traps_include_the_known_ones() -> None:
    ids = {t.id for t in facts().traps}
    assert {
        "gcc10-cuda11.0",
        "gcc11-cuda11.4.0",
        "gcc11.2-cuda11.5",
        "gcc11-libstdcxx-cuda11.5-11.6",
        "glibc-malloc-cuda11.4-11.5",
        "kepler-no-forward-compat",
    } <= ids


def test_facts_are_loaded_once() -> None:
    assert facts() is facts()
