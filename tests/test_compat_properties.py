"""Properties of the resolver over random requests: a decision that holds, or a clean refusal."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ember.compat import Request, known_gpus, resolve
from ember.compat.facts import facts
from ember.compat.versions import driver_floor, parse_cuda, parse_driver
from ember.errors import ResolveError

GPU_NAMES = [g.name for g in known_gpus()]
DRIVERS = [
    None,
    "440.33",
    "450.80.02",
    "470.256.02",
    "520.61.05",
    "535.104.05",
    "570.26",
    "575.51.03",
    "580.65.06",
]
CUDAS = [None, *(t.version for t in facts().toolkits)]


@settings(max_examples=300, deadline=None)
@given(
    gpus=st.lists(st.sampled_from(GPU_NAMES), min_size=1, max_size=3),
    driver=st.sampled_from(DRIVERS),
    cuda=st.sampled_from(CUDAS),
    gcc=st.sampled_from([None, 8, 9, 10, 11, 12, 13, 14, 15]),
    mode=st.sampled_from(["real", "virtual", "both"]),
)
def test_decisions_hold_or_refusals_are_clean(
    gpus: list[str], driver: str | None, cuda: str | None, gcc: int | None, mode: str
) -> None:
    data = facts()
    try:
        decision = resolve(Request(tuple(gpus), driver=driver, cuda=cuda, gcc=gcc, arch_mode=mode))
    except ResolveError as exc:
        assert str(exc)
        assert "\n" not in str(exc)
        return
    toolkit = data.toolkit(parse_cuda(decision.cuda))
    assert toolkit is not None
    for gpu in decision.gpus:
        arch = data.architecture(gpu.compute_capability)
        assert arch is not None
        assert data.supports(toolkit, arch)
    assert decision.gcc <= toolkit.gcc_max
    if cuda is not None:
        assert decision.cuda == cuda
    if gcc is not None:
        assert decision.gcc == gcc
    if driver is not None:
        host = parse_driver(driver)
        if mode != "real" or cuda is None:
            assert toolkit.min_driver <= host  # native: PTX and unpinned choices
        assert driver_floor(decision.min_driver) <= host
