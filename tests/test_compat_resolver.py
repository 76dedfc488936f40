"""The resolver against cases drawn from shared/reference/cuda-compat.md."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ember.compat import (
    Decision,
    Refusal,
    Request,
    check_architectures,
    native_cuda,
    parse_architectures,
    resolve,
)
from ember.errors import EXIT_USAGE, ResolveError

OLLAMA37_ARCHS = "37-real;50-real;52-real;60-real;61-real;70-real;75-real;80-real;86-real"


@dataclass(frozen=True)
class Accepted:
    """A request and the decision fields it must produce."""

    gpus: tuple[str, ...]
    cuda: str
    gcc: int
    archs: str
    min_driver: str
    driver: str | None = None
    pin_cuda: str | None = None
    pin_gcc: int | None = None
    mode: str = "real"
    explicit: str | None = None
    compat: bool = False
    warns: tuple[str, ...] = ()
    no_warns: tuple[str, ...] = field(default=())


ACCEPTED = {
    # Kepler, the point of the project
    "k80-470-auto": Accepted(
        ("Tesla K80",),
        "11.4",
        10,
        "37-real",
        "450.80.02",
        driver="470.256.02",
        warns=("deprecates sm_37",),
        no_warns=("minor-version compatibility",),
    ),
    "k80-no-driver-means-r470": Accepted(("K80",), "11.4", 10, "37-real", "450.80.02"),
    "k80-nvidia-smi-name": Accepted(("NVIDIA Tesla K80",), "11.4", 10, "37-real", "450.80.02"),
    "k80-as-cc": Accepted(("3.7",), "11.4", 10, "37-real", "450.80.02"),
    "k80-as-sm": Accepted(("sm_37",), "11.4", 10, "37-real", "450.80.02"),
    "k80-ollama37-pins": Accepted(
        ("Tesla K80",),
        "11.4",
        10,
        "37-real",
        "450.80.02",
        pin_cuda="11.4",
        pin_gcc=10,
        warns=("__malloc__",),
    ),
    "k80-ollama37-patch-pin": Accepted(
        ("Tesla K80",),
        "11.4.4",
        10,
        "37-real",
        "450.80.02",
        driver="470.256.02",
        pin_cuda="11.4.4",
        pin_gcc=10,
    ),
    "k80-debian12-11.8-gcc11": Accepted(
        ("Tesla K80",),
        "11.8",
        11,
        "37-real",
        "450.80.02",
        pin_cuda="11.8",
        pin_gcc=11,
        compat=True,
        warns=(
            "minor-version compatibility",
            "cubins only",
            "driver >= 450.80.02",
            "nvidia/cuda images",
        ),
    ),
    "k80-debian12-with-driver": Accepted(
        ("Tesla K80",),
        "11.8",
        11,
        "37-real",
        "450.80.02",
        driver="470.256.02",
        pin_cuda="11.8",
        pin_gcc=11,
        compat=True,
        warns=("CUDA 11.8 is newer than CUDA 11.4, which driver 470.256.02 runs natively",),
    ),
    "k80-11.8-auto-gcc": Accepted(
        ("Tesla K80",), "11.8", 11, "37-real", "450.80.02", pin_cuda="11.8", compat=True
    ),
    "k80-11.6-gcc-steps-round-libstdcxx": Accepted(
        ("Tesla K80",), "11.6", 10, "37-real", "450.80.02", pin_cuda="11.6", compat=True
    ),
    "k80-11.5-gcc-steps-round-11.2": Accepted(
        ("Tesla K80",), "11.5", 10, "37-real", "450.80.02", pin_cuda="11.5", compat=True
    ),
    "k80-11.0-gcc9": Accepted(("Tesla K80",), "11.0", 9, "37-real", "450.80.02", pin_cuda="11.0"),
    "k80-11.2-driver-460": Accepted(
        ("Tesla K80",), "11.2", 10, "37-real", "450.80.02", driver="460.91.03", pin_cuda="11.2"
    ),
    "k80-10.2-no-minor-compat": Accepted(
        ("Tesla K80",), "10.2", 8, "37-real", "440.33", pin_cuda="10.2"
    ),
    "k80-virtual": Accepted(
        ("Tesla K80",),
        "11.4",
        10,
        "37-virtual",
        "470.42.01",
        mode="virtual",
        warns=("JIT-compiles every kernel",),
    ),
    "k80-both": Accepted(
        ("Tesla K80",), "11.4", 10, "37", "470.42.01", driver="470.256.02", mode="both"
    ),
    "k80-gcc10-pin-only": Accepted(("Tesla K80",), "11.4", 10, "37-real", "450.80.02", pin_gcc=10),
    "k80-gcc9-pin-only": Accepted(("Tesla K80",), "11.4", 9, "37-real", "450.80.02", pin_gcc=9),
    "k40-470": Accepted(("Tesla K40",), "11.4", 10, "35-real", "450.80.02", driver="470.239.06"),
    "k80-duplicates-collapse": Accepted(
        ("K80", "Tesla K80", "3.7"), "11.4", 10, "37-real", "450.80.02"
    ),
    "kepler-3.0-needs-10.2": Accepted(("GeForce GTX 680",), "10.2", 8, "30-real", "440.33"),
    "kepler-3.0-driver-470": Accepted(
        ("GTX 680",), "10.2", 8, "30-real", "440.33", driver="470.256.02"
    ),
    # several GPUs
    "k80-plus-3090": Accepted(("Tesla K80", "RTX 3090"), "11.4", 10, "37-real;86-real", "455.23"),
    "k80-plus-3090-driver": Accepted(
        ("Tesla K80", "GeForce RTX 3090"),
        "11.4",
        10,
        "37-real;86-real",
        "455.23",
        driver="470.256.02",
    ),
    "k80-3090-both": Accepted(("K80", "3090"), "11.4", 10, "37;86", "470.42.01", mode="both"),
    "k80-t4-3090-sorted": Accepted(
        ("RTX 3090", "Tesla T4", "Tesla K80"), "11.4", 10, "37-real;75-real;86-real", "455.23"
    ),
    "k80-debian12-with-3090": Accepted(
        ("Tesla K80", "RTX 3090"),
        "11.8",
        11,
        "37-real;86-real",
        "455.23",
        pin_cuda="11.8",
        pin_gcc=11,
        compat=True,
    ),
    # explicit CMAKE_CUDA_ARCHITECTURES (profiles)
    "ollama37-preset-cuda11-k80": Accepted(
        ("Tesla K80",),
        "11.4",
        10,
        OLLAMA37_ARCHS,
        "450.80.02",
        pin_cuda="11.4",
        pin_gcc=10,
        explicit=OLLAMA37_ARCHS,
        warns=("deprecates sm_50",),
    ),
    "ollama37-preset-debian12": Accepted(
        ("Tesla K80",),
        "11.8",
        11,
        OLLAMA37_ARCHS,
        "450.80.02",
        pin_cuda="11.8",
        pin_gcc=11,
        explicit=OLLAMA37_ARCHS,
        compat=True,
    ),
    "explicit-virtual-list": Accepted(
        ("Tesla K80",), "11.4", 10, "37-virtual", "470.42.01", explicit="37-virtual"
    ),
    "explicit-lower-cubin-covers": Accepted(
        ("RTX 3090",), "11.4", 10, "80-real", "455.23", driver="470.256.02", explicit="80-real"
    ),
    # Maxwell to Volta: last branch R580
    "p40-no-driver-r580": Accepted(
        ("Tesla P40",), "12.9", 14, "61-real", "525.60.13", warns=("deprecates sm_61",)
    ),
    "p40-535": Accepted(("Tesla P40",), "12.2", 12, "61-real", "525.60.13", driver="535.104.05"),
    "p40-470": Accepted(("Tesla P40",), "11.4", 10, "61-real", "450.80.02", driver="470.256.02"),
    "m40-580": Accepted(("Tesla M40",), "12.9", 14, "52-real", "525.60.13", driver="580.65.06"),
    "v100-450": Accepted(("Tesla V100",), "11.0", 9, "70-real", "450.80.02", driver="450.80.02"),
    # Turing and newer
    "t4-no-driver-newest": Accepted(("Tesla T4",), "13.0", 15, "75-real", "580"),
    "t4-535-both": Accepted(
        ("Tesla T4",), "12.2", 12, "75", "535.54.03", driver="535.104.05", mode="both"
    ),
    "t4-535-pin-12.4-real": Accepted(
        ("Tesla T4",),
        "12.4",
        13,
        "75-real",
        "525.60.13",
        driver="535.104.05",
        pin_cuda="12.4",
        compat=True,
        warns=("minor-version compatibility",),
    ),
    "t4-gcc11-pin": Accepted(
        ("Tesla T4",), "12.2", 11, "75-real", "525.60.13", driver="535.104.05", pin_gcc=11
    ),
    "a100-450": Accepted(("A100",), "11.0", 9, "80-real", "450.80.02", driver="450.80.02"),
    "3090-470": Accepted(("RTX 3090",), "11.4", 10, "86-real", "455.23", driver="470.256.02"),
    "4090-550": Accepted(("RTX 4090",), "12.4", 13, "89-real", "525.60.13", driver="550.54.14"),
    "h100-520": Accepted(("H100",), "11.8", 11, "90-real", "520.61.05", driver="520.61.05"),
    "h100-newest": Accepted(("NVIDIA H100 80GB HBM3",), "13.0", 15, "90-real", "580"),
    "5090-570": Accepted(("RTX 5090",), "12.8", 14, "120-real", "570.26", driver="570.124.06"),
    "b200-575": Accepted(("B200",), "12.9", 14, "100-real", "570.26", driver="575.51.03"),
    "gb10-580": Accepted(("DGX Spark",), "13.0", 15, "121-real", "580", driver="580.65.06"),
}


@pytest.mark.parametrize("case", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted(case: Accepted) -> None:
    decision = resolve(
        Request(
            gpus=case.gpus,
            driver=case.driver,
            cuda=case.pin_cuda,
            gcc=case.pin_gcc,
            arch_mode=case.mode,
            cuda_architectures=case.explicit,
        )
    )
    assert (decision.cuda, decision.gcc, decision.cuda_architectures, decision.min_driver) == (
        case.cuda,
        case.gcc,
        case.archs,
        case.min_driver,
    )
    assert decision.minor_version_compat is case.compat
    joined = "\n".join(decision.warnings)
    for text in case.warns:
        assert text in joined
    for text in case.no_warns:
        assert text not in joined
    if case.compat:
        assert "minor-version compatibility" in joined
    assert decision.reasons


@dataclass(frozen=True)
class Refused:
    """A request that must be refused, the rule, and what the message must say."""

    request: Request
    rule: str | None
    says: tuple[str, ...]


def _req(*gpus: str, **kw: object) -> Request:
    return Request(gpus=gpus, **kw)  # type: ignore[arg-type]


REFUSED = {
    "k80-cuda-12.2": Refused(
        _req("Tesla K80", cuda="12.2"),
        "toolkit-cannot-target",
        (
            "CUDA 12.2 cannot target sm_37 (Tesla K80)",
            "use CUDA <= 11.8",
            "driver 470 runs CUDA 11.4 natively",
        ),
    ),
    "k80-cuda-13-with-driver": Refused(
        _req("Tesla K80", driver="470.256.02", cuda="13.0"),
        "toolkit-cannot-target",
        ("use CUDA <= 11.8", "driver 470.256.02 runs CUDA 11.4 natively"),
    ),
    "k80-11.8-virtual": Refused(
        _req("Tesla K80", cuda="11.8", arch_mode="virtual"),
        "ptx-newer-than-driver",
        ("PTX from CUDA 11.8", "cannot JIT", "use CUDA <= 11.4", "--arch-mode real"),
    ),
    "k80-11.8-both-driver": Refused(
        _req("Tesla K80", driver="470.256.02", cuda="11.8", arch_mode="both"),
        "ptx-newer-than-driver",
        ("driver 470.256.02 (CUDA 11.4)",),
    ),
    "k80-11.4-gcc11-trap": Refused(
        _req("Tesla K80", cuda="11.4", gcc=11),
        "gcc-trap:gcc11-cuda11.4.0",
        ("GCC 11", "CUDA <= 11.5", "use --gcc 10"),
    ),
    "k80-11.4.4-gcc11-trap": Refused(
        _req("Tesla K80", cuda="11.4.4", gcc=11),
        "gcc-trap:gcc11.2-cuda11.5",
        ("GCC 11.2 and later with CUDA <= 11.5 fail",),
    ),
    "k80-11.6-gcc11-libstdcxx": Refused(
        _req("Tesla K80", cuda="11.6", gcc=11),
        "gcc-trap:gcc11-libstdcxx-cuda11.5-11.6",
        ("parameter packs not expanded",),
    ),
    "k80-11.0-gcc10-trap": Refused(
        _req("Tesla K80", cuda="11.0", gcc=10), "gcc-trap:gcc10-cuda11.0", ("use --gcc 9",)
    ),
    "k80-11.8-gcc12-too-new": Refused(
        _req("Tesla K80", cuda="11.8", gcc=12),
        "gcc-too-new",
        ("supports GCC <= 11", "-allow-unsupported-compiler", "use --gcc 11"),
    ),
    "k80-10.2-gcc9-too-new": Refused(
        _req("Tesla K80", cuda="10.2", gcc=9), "gcc-too-new", ("GCC <= 8",)
    ),
    "k80-gcc11-no-native-toolkit": Refused(
        _req("Tesla K80", gcc=11), "gcc-no-toolkit", ("--gcc 10", "--cuda 11.8")
    ),
    "k80-driver-535": Refused(
        _req("Tesla K80", driver="535.104.05"),
        "driver-drops-gpu",
        ("R470 is the last driver branch for Kepler",),
    ),
    "v100-driver-590": Refused(
        _req("Tesla V100", driver="590.44.01"), "driver-drops-gpu", ("R580",)
    ),
    "h100-driver-470": Refused(
        _req("H100", driver="470.256.02"),
        "driver-too-old-for-gpu",
        ("needs driver >= 520.61.05", "Hopper"),
    ),
    "h200-driver-515": Refused(
        _req("H200", driver="515.105.01"), "driver-too-old-for-gpu", ("520.61.05",)
    ),
    "5090-driver-560": Refused(
        _req("RTX 5090", driver="560.35.03"),
        "driver-too-old-for-gpu",
        ("needs driver >= 570.26", "Blackwell"),
    ),
    "b200-driver-550": Refused(
        _req("B200", driver="550.54.14"), "driver-too-old-for-gpu", ("570.26",)
    ),
    "3090-driver-450": Refused(
        _req("RTX 3090", driver="450.80.02"), "driver-too-old-for-gpu", ("455.23",)
    ),
    "k80-and-h100": Refused(_req("Tesla K80", "H100"), "no-common-driver", ("separate targets",)),
    "k80-and-5090-driver": Refused(
        _req("Tesla K80", "RTX 5090", driver="470.256.02"), "driver-too-old-for-gpu", ("570.26",)
    ),
    "sm30-and-sm86": Refused(
        _req("GTX 680", "RTX 3090"),
        "no-common-toolkit",
        ("sm_30 (GeForce GTX 680) needs CUDA 10.2", "sm_86 (GeForce RTX 3090) needs CUDA 11.1"),
    ),
    "sm30-cuda-11.4": Refused(
        _req("GTX 680", cuda="11.4"), "toolkit-cannot-target", ("use CUDA <= 10.2",)
    ),
    "h100-cuda-11.4": Refused(
        _req("H100", cuda="11.4"), "toolkit-cannot-target", ("use CUDA >= 11.8",)
    ),
    "p40-cuda-13": Refused(
        _req("Tesla P40", cuda="13.0"), "toolkit-cannot-target", ("use CUDA <= 12.9",)
    ),
    "t4-driver-470-cuda-12": Refused(
        _req("Tesla T4", driver="470.256.02", cuda="12.0"),
        "driver-too-old-for-toolkit",
        ("needs driver >= 525.60.13", "within a major version"),
    ),
    "k80-driver-440-cuda-11.4": Refused(
        _req("Tesla K80", driver="440.33", cuda="11.4"),
        "driver-too-old-for-toolkit",
        ("driver 440.33 runs CUDA 10.2 natively",),
    ),
    "k80-driver-450.51-cuda-11.4": Refused(
        _req("Tesla K80", driver="450.51.05", cuda="11.4"),
        "driver-too-old-for-toolkit",
        ("needs driver >= 450.80.02",),
    ),
    "driver-older-than-everything": Refused(
        _req("GTX 680", driver="418.40.04"), "driver-too-old", ("440.33",)
    ),
    "explicit-out-of-range": Refused(
        _req("Tesla K80", cuda="11.4", cuda_architectures=OLLAMA37_ARCHS + ";90-real"),
        "toolkit-cannot-target",
        ("CUDA 11.4 cannot target sm_90 (CMAKE_CUDA_ARCHITECTURES)", "use CUDA >= 11.8"),
    ),
    "explicit-beyond-kepler-driver": Refused(
        _req("Tesla K80", cuda_architectures="37-real;90-real"),
        "driver-too-old-for-toolkit",
        ("driver 470 runs CUDA 11.4 natively", "no newer driver can help"),
    ),
    "explicit-all": Refused(
        _req("Tesla K80", cuda_architectures="all"), "architectures-explicit", ("explicit list",)
    ),
    "explicit-misses-k80": Refused(
        _req("Tesla K80", cuda_architectures="50-real;86-real"),
        "architectures-miss-gpu",
        ("no code for Tesla K80", "add 37-real"),
    ),
    "cuda-12.7-never-released": Refused(
        _req("Tesla T4", cuda="12.7"), "toolkit-unknown", ("never released",)
    ),
    "cuda-9.2-unknown": Refused(_req("Tesla K80", cuda="9.2"), "toolkit-unknown", ("10.2",)),
    "malformed-driver-branch-only": Refused(
        _req("Tesla K80", driver="470"), None, ("malformed driver version `470`",)
    ),
    "malformed-cuda-x": Refused(
        _req("Tesla K80", cuda="11.x"), None, ("malformed CUDA version `11.x`",)
    ),
    "malformed-cuda-abc": Refused(_req("Tesla K80", cuda="abc"), None, ("malformed CUDA",)),
    "malformed-gcc": Refused(_req("Tesla K80", gcc=0), None, ("malformed GCC",)),
    "unknown-gpu": Refused(_req("Tesla K8"), None, ("unknown GPU `Tesla K8`", "Tesla K80")),
    "unknown-cc": Refused(_req("3.8"), None, ("unknown compute capability",)),
    "unknown-mode": Refused(_req("Tesla K80", arch_mode="fat"), None, ("unknown arch mode",)),
    "no-gpus": Refused(_req(), None, ("no target GPU",)),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_refused(case: Refused) -> None:
    with pytest.raises(ResolveError) as info:
        resolve(case.request)
    message = str(info.value)
    for text in case.says:
        assert text in message
    assert info.value.exit_code == EXIT_USAGE
    if case.rule is not None:
        assert isinstance(info.value, Refusal)
        assert info.value.rule == case.rule


def test_the_table_is_large_enough() -> None:
    assert len(ACCEPTED) + len(REFUSED) >= 40


def test_k80_refusal_reads_as_the_issue_says() -> None:
    with pytest.raises(Refusal) as info:
        resolve(Request(gpus=("Tesla K80",), cuda="12.2"))
    assert str(info.value) == (
        "CUDA 12.2 cannot target sm_37 (Tesla K80): use CUDA <= 11.8; "
        "driver 470 runs CUDA 11.4 natively"
    )


def test_decision_json_has_the_documented_keys() -> None:
    decision = resolve(Request(gpus=("Tesla K80",), driver="470.256.02"))
    data = decision.to_json()
    assert {"cuda", "gcc", "cuda_architectures", "min_driver", "warnings"} <= set(data)
    assert data["cuda"] == "11.4"
    assert data["gcc"] == 10
    assert isinstance(data["warnings"], list)
    assert all(isinstance(w, str) for w in data["warnings"])
    assert data["gpus"][0]["name"] == "Tesla K80"
    assert data["max_driver_branch"] == "R470"
    assert data["forward_compat"] is False


def test_decision_is_frozen() -> None:
    decision = resolve(Request(gpus=("Tesla K80",)))
    assert isinstance(decision, Decision)
    with pytest.raises(AttributeError):
        decision.cuda = "12.0"  # type: ignore[misc]


def test_kepler_never_gets_forward_compat_but_others_may() -> None:
    assert resolve(Request(gpus=("Tesla K80",))).forward_compat is False
    assert resolve(Request(gpus=("Tesla T4",))).forward_compat is True


def test_reasons_explain_each_choice() -> None:
    decision = resolve(Request(gpus=("Tesla K80",), driver="470.256.02"))
    text = "\n".join(decision.reasons)
    assert "CUDA 11.4 is the newest toolkit that targets sm_37" in text
    assert "GCC 10" in text
    assert "37-real" in text
    assert "minimum driver 450.80.02" in text


def test_gcc_reason_names_the_trap_it_stepped_round() -> None:
    decision = resolve(Request(gpus=("Tesla K80",), cuda="11.6"))
    assert any("parameter packs not expanded" in r for r in decision.reasons)


def test_a_string_instead_of_a_tuple_is_one_gpu() -> None:
    decision = resolve(Request(gpus="Tesla K80"))  # type: ignore[arg-type]
    assert decision.cuda_architectures == "37-real"


@pytest.mark.parametrize(
    ("driver", "cuda"),
    [
        ("440.33", "10.2"),
        ("450.80.02", "11.0"),
        ("470.42.01", "11.4"),
        ("470.256.02", "11.4"),
        ("520.61.05", "11.8"),
        ("535.104.05", "12.2"),
        ("570.26", "12.8"),
        ("575.51.03", "12.9"),
        ("580.65.06", "13.0"),
    ],
)
def test_native_cuda_follows_the_min_driver_column(driver: str, cuda: str) -> None:
    assert native_cuda(driver) == cuda


def test_native_cuda_refuses_old_and_malformed_drivers() -> None:
    with pytest.raises(ResolveError, match="older than every toolkit"):
        native_cuda("418.40.04")
    with pytest.raises(ResolveError, match="malformed driver"):
        native_cuda("470")


# --- explicit CMAKE_CUDA_ARCHITECTURES lists ----------------------------------


@pytest.mark.parametrize("cuda", ["11.4", "11.4.4", "11.8", "11.1"])
def test_ollama37_list_fits_cuda_11(cuda: str) -> None:
    check_architectures(cuda, OLLAMA37_ARCHS)


@pytest.mark.parametrize(
    ("cuda", "archs", "says"),
    [
        ("12.0", OLLAMA37_ARCHS, "cannot target sm_37 (Kepler)"),
        ("11.0", OLLAMA37_ARCHS, "sm_86"),
        ("11.4", "37-real;89-real", "sm_89 (Ada)"),
        ("11.8", "90a-real", "no `a` variants"),
        ("12.8", "121f", "sm_121"),
        ("12.8", "120f-real", "no `f` variants"),
        ("13.0", "101-real", "sm_101"),
        ("11.4", "38-real", "no known compute capability"),
        ("11.4", "37-cubin", "malformed CMAKE_CUDA_ARCHITECTURES entry"),
        ("11.4", "native", "explicit list"),
        ("11.4", " ; ", "empty CMAKE_CUDA_ARCHITECTURES"),
        ("11.x", "37-real", "malformed CUDA version"),
        ("12.7", "50-real", "never released"),
    ],
)
def test_check_architectures_refuses(cuda: str, archs: str, says: str) -> None:
    with pytest.raises(ResolveError) as info:
        check_architectures(cuda, archs)
    assert says in str(info.value)


def test_check_architectures_names_the_fix() -> None:
    with pytest.raises(Refusal) as info:
        check_architectures("12.2", OLLAMA37_ARCHS)
    assert "use CUDA <= 11.8" in str(info.value)
    assert info.value.rule == "architectures-out-of-range"


@pytest.mark.parametrize(
    ("cuda", "archs"),
    [("12.0", "90a-real"), ("12.9", "120f-real;121f"), ("13.0", "110-real"), ("12.8", "101-real")],
)
def test_check_architectures_accepts_suffixes_and_new_archs(cuda: str, archs: str) -> None:
    check_architectures(cuda, archs)


def test_parse_architectures_kinds() -> None:
    entries = parse_architectures("37-real;86-virtual;90a, 120")
    assert [(e.sm, e.suffix, e.kind) for e in entries] == [
        (37, "", "real"),
        (86, "", "virtual"),
        (90, "a", "both"),
        (120, "", "both"),
    ]
    assert [str(e) for e in entries] == ["37-real", "86-virtual", "90a", "120"]
