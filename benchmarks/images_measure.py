"""Measure the sandbox images: cold/warm builds, sizes, wheels, import, first pip install.

    sudo .venv/bin/python benchmarks/images_measure.py 2024.1.0 2026.7.1 2026.8.0

Each version is built cold in a cache of its own (a temporary DASK_GKE_CACHE),
then warm; the archives are imported into a fresh private containerd; pip
installs through a fresh devpi-server (cold) and again (warm) from a
container in a loopback-only network namespace. Prints one JSON object.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from sandbox.images.build import base_config
from sandbox.node.relay import Relay, RelayHub
from sandbox.pypi import INDEX_HOST, INDEX_PORT, host_port
from sandbox.pypi.server import start, stop
from tests.unit.images.harness import Containerd, NetworkNamespace
from tests.unit.sandbox.conftest import free_port_base

REPO = Path(__file__).resolve().parents[1]

PIP_PROBE = (
    "import subprocess, sys, time; t = time.monotonic(); "
    "subprocess.run(['pip', 'install', '-q', *sys.argv[1:]], check=True); "
    "print('PIP', round(time.monotonic() - t, 2))"
)


def build(version: str, cache: Path) -> dict:
    env = {**os.environ, "DASK_GKE_CACHE": str(cache)}
    argv = [sys.executable, "-m", "sandbox.images", "build", "--dask-version", version]
    start_time = time.monotonic()
    cold = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, cwd=REPO)
    cold_s = time.monotonic() - start_time
    start_time = time.monotonic()
    subprocess.run(argv, env=env, capture_output=True, text=True, check=True, cwd=REPO)
    warm_s = time.monotonic() - start_time
    steps = dict(re.findall(r"images: (.+) done in ([0-9.]+) s", cold.stderr))
    wheels = re.search(r"(\d+) wheels, (\d+) MiB in the set", cold.stderr)
    archives = [line.split()[-1] for line in cold.stdout.splitlines()]
    return {
        "cold_s": round(cold_s, 1),
        "warm_s": round(warm_s, 2),
        "steps_s": {k: float(v) for k, v in steps.items()},
        "wheels": int(wheels.group(1)),
        "wheels_mib": int(wheels.group(2)),
        "archives_mib": {Path(a).name: round(Path(a).stat().st_size / 2**20) for a in archives},
        "archives": archives,
    }


def import_and_pip(version: str, archives: list[str], cache: Path) -> dict:
    containerd, netns, relays = Containerd(), NetworkNamespace(), RelayHub()
    sandbox = Path(tempfile.mkdtemp(prefix="measure-"))
    base = free_port_base(span=5)
    result = {}
    try:
        containerd.start()
        netns.create()
        for archive in archives:
            t = time.monotonic()
            containerd.ctr("images", "import", archive, timeout=600)
            result[f"import_{Path(archive).name}_s"] = round(time.monotonic() - t, 1)
        start(sandbox, base, directory=cache / "pypi-measure")
        index = ("127.0.0.1", host_port(base))
        relays.listen(
            Relay("pypi", ("127.0.0.3", INDEX_PORT), lambda: index, netns_path=netns.path)
        )
        hosts = sandbox / "hosts"
        hosts.write_text(f"127.0.0.1 localhost\n127.0.0.3 {INDEX_HOST}\n")
        for run, packages in (("cold", "tabulate xarray"), ("warm", "tabulate xarray")):
            argv = ["run", "--rm", "--with-ns", f"network:{netns.path}"]
            argv += ["--mount", f"type=bind,src={hosts},dst=/etc/hosts,options=rbind:ro"]
            argv += [f"ghcr.io/dask/dask:{version}", f"pip-{run}"]
            argv += [*base_config(version).entrypoint, "python", "-c", PIP_PROBE, *packages.split()]
            out = containerd.ctr(*argv, timeout=600).stdout
            result[f"pip_{run}_s"] = float(re.search(r"PIP ([0-9.]+)", out).group(1))
    finally:
        relays.stop()
        stop(sandbox)
        containerd.stop()
        netns.delete()
    return result


def main() -> None:
    report = {}
    for version in sys.argv[1:]:
        cache = Path(tempfile.mkdtemp(prefix=f"images-{version}-"))
        measured = build(version, cache)
        measured.update(import_and_pip(version, measured.pop("archives"), cache))
        report[version] = measured
        print(json.dumps({version: measured}), file=sys.stderr, flush=True)
        subprocess.run(["rm", "-rf", str(cache)], check=False)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
