"""The CLI through click's test runner: exact, deterministic output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ember import profiles


def test_help_lists_every_verb(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--help")
    assert result.exit_code == 0
    for verb in ("init", "profiles", "schema", "plan", "render", "resolve", "gpus", "build", "up"):
        assert f"  {verb} " in result.stdout or verb in ("build", "up")


def test_profiles_lists_the_shipped_profiles(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("profiles")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == profiles.names()
    assert "ollama37" in names and "demo" in names


def test_init_writes_the_profile_and_refuses_to_overwrite(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = run_cli("init", "--profile", "demo", "--out", str(tmp_path / "ember.toml"))
    assert first.exit_code == 0, first.stderr
    assert (tmp_path / "ember.toml").read_text() == profiles.text("demo")
    again = run_cli("init", "--profile", "demo", "--out", str(tmp_path / "ember.toml"))
    assert again.exit_code == 2
    assert (
        again.stderr
        == f"ember: error: {tmp_path / 'ember.toml'} already exists (use --force to overwrite it)\n"
    )
    forced = run_cli(
        "init", "--profile", "ollama37", "--force", "--out", str(tmp_path / "ember.toml")
    )
    assert forced.exit_code == 0
    assert "ollama37" in (tmp_path / "ember.toml").read_text()


def test_init_unknown_profile(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("init", "--profile", "olama37")
    assert result.exit_code == 2
    assert "did you mean `ollama37`?" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_schema_is_json_schema_with_every_section(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("schema")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert set(doc["properties"]) == {
        "project",
        "source",
        "target",
        "toolchain",
        "build",
        "runtime",
        "compose",
        "engine",
    }
    assert doc["additionalProperties"] is False


def test_plan_json_carries_the_keys(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--profile", "ollama37", "plan", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["builder"]["image"] == "ollama37-builder:latest"
    assert data["runtime"]["image"] == "ollama37:latest"
    assert data["toolchain"] == {"cuda": "11.4", "gcc": "10.5.0", "cmake": "4.0.0", "go": "1.25.3"}
    assert "37-real" in data["target"]["cuda_architectures"].split(";")


def test_plan_in_words(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--profile", "demo", "plan")
    assert result.exit_code == 0, result.stderr
    assert "builder: ember-demo-builder:latest FROM ember/debian:bookworm" in result.stdout
    assert "build runtime ember-demo:latest from the local tree" in result.stdout


def test_default_is_ollama37_and_a_local_ember_toml_wins(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert json.loads(run_cli("plan", "--json").stdout)["origin"] == "profile ollama37"
    (tmp_path / "ember.toml").write_text(profiles.text("demo"))
    data = json.loads(run_cli("plan", "--json").stdout)
    assert data["project"]["name"] == "ember-demo"


def test_render_writes_the_six_files(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    result = run_cli("--profile", "ollama37", "render", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(
        [
            ".env.example",
            "README.md",
            "builder/Dockerfile",
            "docker-compose.yml",
            "runtime/Dockerfile",
            "runtime/Dockerfile.local",
        ]
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[project]\nname = 1\n", "`project.name`"),
        ("not toml at all ===", "invalid TOML"),
        ("", "`project`: is required but missing"),
    ],
)
def test_bad_spec_exits_2_with_one_line(
    run_cli, tmp_path: Path, content: str, expected: str
) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "bad.toml"
    spec.write_text(content)
    result = run_cli("--spec", str(spec), "plan")
    assert result.exit_code == 2
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("ember: error: ")
    assert result.stdout == ""


def test_missing_spec_file(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--spec", "nope.toml", "plan")
    assert result.exit_code == 2
    assert (
        result.stderr
        == "ember: error: nope.toml: no such file (run `ember init` to write one from a profile)\n"
    )


def test_spec_and_profile_together_is_a_usage_error(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--spec", "x.toml", "--profile", "demo", "plan")
    assert result.exit_code == 2
    assert "give either --spec or --profile" in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text("[project]\n")
    plain = subprocess.run(
        [sys.executable, "-m", "ember", "--spec", str(spec), "plan"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "ember", "--debug", "--spec", str(spec), "plan"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys; from ember.cli import main\n"
        "try: main(['--help'])\n"
        "except SystemExit: pass\n"
        "heavy = [m for m in ('pydantic', 'jinja2', 'python_on_whales', 'rich', 'yaml', 'elftools') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().endswith("[]"), out


def test_plan_refuses_a_pinned_toolkit_that_cannot_target_the_gpu(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = profiles.text("ollama37").replace('version = "11.4"', 'version = "12.2"', 1)
    (tmp_path / "ember.toml").write_text(text)
    result = run_cli("plan")
    assert result.exit_code == 2
    assert result.stderr.startswith("ember: error: CUDA 12.2 cannot target sm_37 (Tesla K80)")
    assert "Traceback" not in result.stderr


def test_build_refuses_an_unset_required_version_before_any_engine_call(
    run_cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from ember.build import check_version
    from ember.errors import SpecError
    from ember.plan import make_plan
    from ember.spec import Loaded, load_text

    text = profiles.text("ollama37").replace('version = "2.0.1"', 'version = "0.0.0"', 1)
    plan = make_plan(Loaded(load_text(text, "ember.toml"), "ember.toml", tmp_path, None))
    with pytest.raises(SpecError, match=r"project\.version") as info:
        check_version(plan)
    assert info.value.exit_code == 2


def test_go_mod_newer_than_the_toolchain_is_refused(tmp_path: Path) -> None:
    import shutil

    from ember.build import check_go_version
    from ember.errors import SpecError
    from ember.plan import make_plan
    from ember.spec import Loaded, load_text

    src = tmp_path / "src"
    shutil.copytree(Path(__file__).resolve().parent.parent / "examples" / "demo", src)
    text = profiles.text("demo").replace('path = "ember:examples/demo"', 'path = "src"', 1)
    plan = make_plan(Loaded(load_text(text, "ember.toml"), "ember.toml", tmp_path, None))
    check_go_version(plan)  # go 1.22 in go.mod, Go 1.23 in the builder: fine
    gomod = src / "go.mod"
    gomod.write_text(gomod.read_text().replace("go 1.22", "go 1.24.1"))
    with pytest.raises(SpecError, match=r"asks for go 1\.24\.1"):
        check_go_version(plan)


def test_unwritable_output_is_one_line(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("--profile", "demo", "render", "--out", str(blocker / "sub"))
    assert result.exit_code == 1
    assert result.stderr.startswith("ember: error: ")
    assert result.stderr.count("\n") == 1
    init = run_cli("init", "--out", str(tmp_path / "missing" / "ember.toml"))
    assert init.exit_code == 1
    assert init.stderr.startswith("ember: error: No such file or directory")


def test_log_folders_are_fresh_and_only_the_newest_are_kept(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ember.build import KEEP_LOGS, new_log_dir

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    made = [new_log_dir("p") for _ in range(KEEP_LOGS + 5)]
    assert len(set(made)) == len(made)
    kept = sorted(p for p in (tmp_path / "ember" / "p" / "logs").iterdir())
    assert kept == made[-KEEP_LOGS:]


def test_builder_hash_follows_instructions_not_comments_or_labels(tmp_path: Path) -> None:
    import dataclasses

    from ember.build import builder_hash
    from ember.plan import make_plan
    from ember.spec import Loaded

    plan = make_plan(Loaded(profiles.load("demo"), "profile demo", tmp_path, "demo"))
    other_origin = dataclasses.replace(plan, origin="somewhere else")  # only a comment changes
    assert builder_hash(other_origin) == builder_hash(plan)
    env = dict(plan.spec.toolchain.env, EXTRA="1")
    spec = plan.spec.model_copy(
        update={"toolchain": plan.spec.toolchain.model_copy(update={"env": env})}
    )
    assert builder_hash(dataclasses.replace(plan, spec=spec)) != builder_hash(plan)
