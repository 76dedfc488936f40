"""ember.proc: the one place that runs programs (no engine needed)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ember import proc

PY = sys.executable


def test_run_captures_stdout_stderr_and_exit_code() -> None:
    result = proc.run([PY, "-c", "import sys; print('out'); print('err', file=sys.stderr)"])
    assert (result.stdout, result.stderr, result.returncode, result.ok) == (
        "out\n",
        "err\n",
        0,
        True,
    )
    assert result.argv[0] == PY


def test_failure_carries_argv_code_and_tail() -> None:
    code = "import sys; [print(i, file=sys.stderr) for i in range(100)]; sys.exit(3)"
    with pytest.raises(proc.CommandError) as caught:
        proc.run([PY, "-c", code])
    err = caught.value
    assert err.returncode == 3
    assert err.argv == (PY, "-c", code)
    assert err.tail(5).splitlines() == ["95", "96", "97", "98", "99"]
    assert "exited with code 3: 99" in str(err)
    assert proc.run([PY, "-c", "raise SystemExit(4)"], check=False).returncode == 4


def test_arguments_are_never_shell_words(tmp_path: Path) -> None:
    tricky = "a b; rm -rf / $(echo x) 'q'"
    result = proc.run([PY, "-c", "import sys; print(sys.argv[1])", tricky])
    assert result.stdout == tricky + "\n"


def test_env_additions_and_removals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_GONE", "1")
    code = "import os; print(os.environ.get('EMBER_NEW'), os.environ.get('EMBER_GONE'), 'PATH' in os.environ)"
    result = proc.run([PY, "-c", code], env={"EMBER_NEW": "x y", "EMBER_GONE": None})
    assert result.stdout == "x y None True\n"


def test_input_and_cwd(tmp_path: Path) -> None:
    data = "line\n" * 50_000  # larger than a pipe buffer
    result = proc.run(
        [PY, "-c", "import sys, os; d=sys.stdin.read(); print(len(d), os.getcwd())"],
        input=data,
        cwd=tmp_path,
    )
    assert result.stdout.split() == [str(len(data)), str(tmp_path)]


def test_missing_program_is_command_not_found() -> None:
    with pytest.raises(proc.CommandNotFound, match="`no-such-program-ember` is not installed"):
        proc.run(["no-such-program-ember", "x"])


def test_timeout_stops_the_child() -> None:
    started = time.monotonic()
    with pytest.raises(proc.CommandTimeout, match=r"timeout of 0\.5s"):
        proc.run(
            [PY, "-c", "import time; print('started', flush=True); time.sleep(30)"], timeout=0.5
        )
    assert time.monotonic() - started < 10


def test_stream_hands_over_lines_as_they_come_and_keeps_a_tail() -> None:
    seen: list[tuple[str, str]] = []
    code = textwrap.dedent(
        """
        import sys
        for i in range(1000):
            print(i, flush=True)
        print('warn', file=sys.stderr, flush=True)
        sys.stdout.write('no newline at the end')
        """
    )
    raw = io.BytesIO()
    result = proc.stream(
        [PY, "-c", code], lambda s, line: seen.append((s, line)), keep_lines=10, raw_log=raw
    )
    assert seen[0] == ("stdout", "0")
    assert ("stderr", "warn") in seen
    assert (
        seen[-1] == ("stdout", "no newline at the end")
        or ("stdout", "no newline at the end") in seen
    )
    assert len([s for s in seen if s[0] == "stdout"]) == 1001
    assert result.stdout.splitlines()[-1] == "no newline at the end"
    assert len(result.stdout.splitlines()) == 10
    assert raw.getvalue().startswith(b"0\n1\n")


def test_stream_failure_raises_with_the_tail() -> None:
    with pytest.raises(proc.CommandError) as caught:
        proc.stream([PY, "-c", "print('boom'); raise SystemExit(2)"], lambda s, line: None)
    assert caught.value.returncode == 2
    assert "boom" in caught.value.tail()


def test_ctrl_c_stops_the_child_before_propagating(tmp_path: Path) -> None:
    """SIGINT to ember (only): the child is stopped, then KeyboardInterrupt propagates."""
    marker = tmp_path / "child.pid"
    script = tmp_path / "outer.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from ember import proc
            child = "import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
            try:
                proc.stream([sys.executable, "-c", child], lambda s, l: None)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
                sys.exit(130)
            """
        )
    )
    outer = subprocess.Popen([PY, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child_pid = int(marker.read_text())
        outer.send_signal(signal.SIGINT)
        out, _ = outer.communicate(timeout=30)
    finally:
        if outer.poll() is None:
            outer.kill()
    assert outer.returncode == 130 and out == "interrupted\n"
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)


def test_sigint_deferred_delivers_afterwards() -> None:
    done = []

    def cleanup() -> None:
        with proc.sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            done.append("cleanup ran to the end")

    with pytest.raises(KeyboardInterrupt):
        cleanup()
    assert done == ["cleanup ran to the end"]


def test_display_and_which() -> None:
    assert proc.display(["a b", "c"]) == "'a b' c"
    assert proc.display(["x" * 200], limit=20).endswith("...")
    assert proc.which("sh") is not None
    assert proc.which("no-such-program-ember") is None
