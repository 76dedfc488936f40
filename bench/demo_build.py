"""Benchmark: a demo build, cold and unchanged, against plain `docker build`, with image sizes.

    sudo .venv/bin/python bench/demo_build.py [--profile demo|demo-cuda] [--no-cold]

Measures, in one run on this machine:
  1. a cold build (`ember build --no-cache`): wall time, and step time per stage
     (builder, compile, runtime) from the build's own event log;
  2. a no-change rebuild (`ember build`: the builder is reused, the runtime is
     rebuilt from BuildKit's cache) against the baseline, plain `docker buildx
     build` of the same rendered Dockerfiles with the same warm cache (what
     the seed's Makefile does);
  3. the sizes of the builder and of the builder-based runtime image (the
     seed's design: the run stage is FROM the builder).
Needs a running engine and the profile's base image (`ember base bootstrap`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

EMBER = [sys.executable, "-m", "ember"]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def plan(profile: str) -> dict[str, object]:
    out = subprocess.run(
        [*EMBER, "--profile", profile, "plan", "--json"], check=True, capture_output=True, text=True
    )
    data: dict[str, object] = json.loads(out.stdout)
    return data


def state_dir(project: str) -> Path:
    import platformdirs

    return Path(platformdirs.user_state_dir("ember")) / project


def latest_log(project: str) -> Path:
    logs = sorted((state_dir(project) / "logs").iterdir(), key=lambda p: p.stat().st_mtime)
    return logs[-1]


def stage_times(log_dir: Path) -> dict[str, float]:
    """Sum of step seconds per stage, from events.jsonl (builder steps have no stage name)."""
    per: dict[str, float] = defaultdict(float)
    image = ""
    for line in (log_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "BuildStarted":
            image = event["image"]
        elif event["event"] == "StepFinished" and not event.get("cached"):
            stage = event.get("stage") or "-"
            key = "builder" if "-builder:" in image else stage
            if key not in ("internal", "-") or "-builder:" in image:
                per[key] += float(event.get("seconds") or 0.0)
    return dict(per)


def size(ref: str) -> int:
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", ref],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold --no-cache build")
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of each warm measurement (median)"
    )
    args = parser.parse_args()
    p = plan(args.profile)
    builder = p["builder"]["image"]  # type: ignore[index]
    runtime = p["runtime"]["image"]  # type: ignore[index]
    project = p["project"]["name"]  # type: ignore[index]
    print(f"profile {args.profile}: {builder} + {runtime}")

    if not args.no_cold:
        cold = timed([*EMBER, "--profile", args.profile, "build", "--no-cache"])
        stages = stage_times(latest_log(project))
        print(f"cold build (ember build --no-cache): {cold:8.1f} s wall")
        for stage, seconds in sorted(stages.items()):
            print(f"  stage {stage:<10} {seconds:8.1f} s of step time")
    else:
        subprocess.run(
            [*EMBER, "--profile", args.profile, "build"], check=True, capture_output=True
        )

    rendered = state_dir(project) / "rendered"
    spec_source = p["source"]  # type: ignore[index]
    context = spec_source["path"] or str(rendered / "runtime")  # type: ignore[index]
    dockerfile = rendered / p["runtime"]["dockerfile"]  # type: ignore[index]
    secret = (
        ["--secret", "id=cacert,src=/etc/ssl/certs/ca-certificates.crt"]
        if os.path.exists("/etc/ssl/certs/ca-certificates.crt")
        else []
    )
    plain_builder = [
        "docker",
        "buildx",
        "build",
        "--load",
        "--network",
        "host",
        *secret,
        "-t",
        builder,
        str(rendered / "builder"),
    ]
    plain_runtime = [
        "docker",
        "buildx",
        "build",
        "--load",
        "--network",
        "host",
        *secret,
        "-f",
        str(dockerfile),
        "-t",
        runtime,
        context,
    ]

    def median(argvs: list[list[str]]) -> float:
        samples = sorted(sum(timed(a) for a in argvs) for _ in range(args.runs))
        return samples[len(samples) // 2]

    ember_warm = median([[*EMBER, "--profile", args.profile, "build"]])
    plain_warm = median([plain_builder, plain_runtime])
    print(
        f"no-change rebuild, ember build            : {ember_warm:6.2f} s (median of {args.runs})"
    )
    print(
        f"no-change rebuild, plain docker build x2  : {plain_warm:6.2f} s (median of {args.runs})"
    )
    print(f"ratio ember / plain docker                : {ember_warm / plain_warm:6.2f}x")
    b, r = size(builder), size(runtime)
    print(f"size {builder:<34} {b / 1e9:6.2f} GB")
    print(
        f"size {runtime:<34} {r / 1e9:6.2f} GB  ({r / b:.3f}x the builder: the run stage is FROM it)"
    )


if __name__ == "__main__":
    main()
