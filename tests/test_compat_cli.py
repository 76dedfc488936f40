"""`ember resolve` and `ember gpus` through click's runner."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

Run = Callable[..., Any]


def _ok(result: Any) -> None:
    assert "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr


def test_k80_with_r470_driver_json(run_cli: Run) -> None:
    result = run_cli("resolve", "--gpu", "Tesla K80", "--driver", "470.256.02", "--json")
    _ok(result)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["cuda"] == "11.4"
    assert data["gcc"] == 10
    assert "37-real" in data["cuda_architectures"].split(";")
    assert data["min_driver"] == "450.80.02"
    assert isinstance(data["warnings"], list)
    assert any("sm_37" in w for w in data["warnings"])


def test_k80_with_cuda_12_2_is_refused_with_the_fix(run_cli: Run) -> None:
    result = run_cli("resolve", "--gpu", "Tesla K80", "--cuda", "12.2")
    _ok(result)
    assert result.exit_code == 2
    assert result.stderr.startswith("ember: error: CUDA 12.2 cannot target sm_37 (Tesla K80)")
    assert "use CUDA <= 11.8" in result.stderr
    assert "driver 470 runs CUDA 11.4 natively" in result.stderr
    assert result.stdout == ""


def test_refusal_as_json(run_cli: Run) -> None:
    result = run_cli("resolve", "--gpu", "Tesla K80", "--cuda", "12.2", "--json")
    _ok(result)
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert "use CUDA <= 11.8" in data["error"]
    assert data["rule"] == "toolkit-cannot-target"


def test_debian12_toolchain_is_accepted_with_a_warning(run_cli: Run) -> None:
    result = run_cli(
        "resolve", "--gpu", "K80", "--cuda", "11.8", "--gcc", "11", "--arch-mode", "real", "--json"
    )
    _ok(result)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["cuda"], data["gcc"], data["cuda_architectures"]) == ("11.8", 11, "37-real")
    assert data["minor_version_compat"] is True
    assert any("minor-version compatibility" in w for w in data["warnings"])


def test_ollama37_pins_human_output(run_cli: Run) -> None:
    result = run_cli("resolve", "--gpu", "Tesla K80", "--cuda", "11.4", "--gcc", "10")
    _ok(result)
    assert result.exit_code == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first == "CUDA 11.4, GCC 10, CMAKE_CUDA_ARCHITECTURES=37-real"
    assert "why:" in result.stdout
    assert "warnings:" in result.stdout


def test_two_gpus(run_cli: Run) -> None:
    result = run_cli("resolve", "--gpu", "Tesla K80", "--gpu", "RTX 3090")
    _ok(result)
    assert result.exit_code == 0, result.stderr
    assert "CMAKE_CUDA_ARCHITECTURES=37-real;86-real" in result.stdout


def test_compute_capability_and_modes(run_cli: Run) -> None:
    result = run_cli("resolve", "--gpu", "3.7", "--gpu", "sm_86", "--arch-mode", "both", "--json")
    _ok(result)
    assert json.loads(result.stdout)["cuda_architectures"] == "37;86"
    result = run_cli("resolve", "--gpu", "37", "--arch-mode", "virtual", "--json")
    data = json.loads(result.stdout)
    assert data["cuda_architectures"] == "37-virtual"
    assert any("JIT" in w for w in data["warnings"])


def test_explicit_architectures(run_cli: Run) -> None:
    archs = "37-real;50-real;52-real;60-real;61-real;70-real;75-real;80-real;86-real"
    result = run_cli(
        "resolve", "--gpu", "K80", "--cuda", "11.4", "--cuda-architectures", archs, "--json"
    )
    _ok(result)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["cuda_architectures"] == archs


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--gpu", "H100", "--driver", "470.256.02"], "needs driver >= 520.61.05"),
        (["--gpu", "RTX 5090", "--driver", "560.35.03"], "needs driver >= 570.26"),
        (["--gpu", "Tesla K8"], "closest known names: Tesla K80"),
        (["--gpu", "K80", "--driver", "470"], "malformed driver version `470`"),
        (["--gpu", "K80", "--cuda", "11.x"], "malformed CUDA version `11.x`"),
        (["--gpu", "K80", "--cuda", "11.8", "--gcc", "12"], "-allow-unsupported-compiler"),
        (["--gpu", "K80", "--driver", "535.104.05"], "R470 is the last driver branch"),
    ],
)
def test_refusals_exit_2_with_one_line(run_cli: Run, args: list[str], says: str) -> None:
    result = run_cli("resolve", *args)
    _ok(result)
    assert result.exit_code == 2
    assert result.stderr.startswith("ember: error: ")
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_gpu_as_json(run_cli: Run) -> None:
    result = run_cli("resolve", "--gpu", "Tesla K8", "--json")
    _ok(result)
    assert result.exit_code == 2
    assert "Tesla K80" in json.loads(result.stdout)["error"]


@pytest.mark.parametrize(
    "args",
    [
        [],  # --gpu is required
        ["--gpu", "K80", "--arch-mode", "fat"],
        ["--gpu", "K80", "--gcc", "eleven"],
    ],
)
def test_usage_errors_exit_2(run_cli: Run, args: list[str]) -> None:
    result = run_cli("resolve", *args)
    _ok(result)
    assert result.exit_code == 2


def test_gpus_lists_the_table(run_cli: Run) -> None:
    result = run_cli("gpus")
    _ok(result)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "GPU",
        "CC",
        "architecture",
        "segment",
        "last",
        "toolkit",
        "last",
        "driver",
    ]
    k80 = next(line for line in lines if line.startswith("Tesla K80 "))
    assert k80.split() == ["Tesla", "K80", "3.7", "Kepler", "data-center", "11.x", "(11.8)", "R470"]
    assert len(lines) > 60
    assert run_cli("gpus").stdout == result.stdout  # deterministic


def test_gpus_json(run_cli: Run) -> None:
    result = run_cli("gpus", "--json")
    _ok(result)
    data = json.loads(result.stdout)
    assert len(data) >= 60
    k80 = next(g for g in data if g["name"] == "Tesla K80")
    assert k80 == {
        "name": "Tesla K80",
        "compute_capability": "3.7",
        "sm": 37,
        "architecture": "Kepler",
        "segment": "data-center",
        "first_toolkit": None,
        "last_toolkit": "11.x",
        "newest_toolkit": "11.8",
        "last_driver_branch": "R470",
    }


def test_help_does_not_import_compat() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from ember.cli import cli\n"
        "r = CliRunner().invoke(cli, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'resolve' in r.output\n"
        "print(sorted(m for m in sys.modules if m.startswith('ember.compat')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_resolve_help_does_not_load_the_tables() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from ember.cli import cli\n"
        "r = CliRunner().invoke(cli, ['resolve', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m.startswith('ember.compat')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
