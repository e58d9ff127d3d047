"""The sandbox images, built for real and run with a private containerd (marked sandbox).

Each container runs inside a network namespace of the test's own with only
loopback: the images' pip reaches the sandbox's index through a relay into
that namespace (pypi.dask-gke.internal in the container's /etc/hosts), and
nothing else. Skipped, with the reason, without root or the Debian tools.
"""

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from sandbox.images import ensure_images, ensure_pause_image, import_images
from sandbox.images.build import base_config, notebook_config
from sandbox.images.config import cache_root
from sandbox.node.relay import Relay, RelayHub
from sandbox.pypi import INDEX_HOST, INDEX_PORT, host_port, index_url
from sandbox.pypi.server import start, stop
from tests.unit.images.harness import Containerd, NetworkNamespace
from tests.unit.sandbox.conftest import free_port_base

OLD, NEW = "2024.1.0", "2026.8.0"  # before and after distributed dropped dask-scheduler
RELAY_ADDRESS = "127.0.0.3"  # where pypi.dask-gke.internal points inside the namespace
OTHER_LOOPBACK = "127.0.0.2"  # reaches a server bound to 0.0.0.0, not one bound to 127.0.0.1
SMALL_PACKAGE, SMALL_VERSION = "tabulate", "0.9.0"  # in no image's wheel set
RUN_TIMEOUT = 300.0
JUPYTER_TIMEOUT = 120.0
CHART_CONFIG = (
    "c = get_config()\n"
    "c.NotebookApp.password = 'argon2:not-a-real-hash'\n"
    "c.ServerApp.password_required = True\n"
)
TOOLS = ("mmdebstrap", "umoci", "containerd", "ctr", "runc", "ip", "unshare")


def missing_requirements() -> str:
    if os.geteuid() != 0:
        return "needs root (mmdebstrap, umoci, containerd, network namespaces)"
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        return f"missing {', '.join(missing)}: run `make sandbox-system-packages`"
    return ""


pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(bool(missing_requirements()), reason=missing_requirements() or "ready"),
]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """Images of both versions imported into a private containerd, a namespace, the index."""
    archives = [*ensure_images(OLD), *ensure_images(NEW), ensure_pause_image()]
    containerd, netns = Containerd(), NetworkNamespace()
    sandbox_dir = tmp_path_factory.mktemp("sandbox")
    port_base = free_port_base(span=5)
    relays = RelayHub()
    try:
        containerd.start()
        netns.create()
        import_images(Path(shutil.which("ctr")), containerd.socket, archives, RUN_TIMEOUT)
        start(sandbox_dir, port_base, directory=cache_root() / "pypi" / "test-images")
        index = ("127.0.0.1", host_port(port_base))
        relays.listen(
            Relay("pypi", (RELAY_ADDRESS, INDEX_PORT), lambda: index, netns_path=netns.path)
        )
        hosts = sandbox_dir / "hosts"
        hosts.write_text(f"127.0.0.1 localhost\n{RELAY_ADDRESS} {INDEX_HOST}\n")
        yield Node(containerd, netns, hosts, sandbox_dir, index[1])
    finally:
        relays.stop()
        stop(sandbox_dir)
        containerd.stop()
        netns.delete()


class Node:
    def __init__(self, containerd, netns, hosts, directory, index_port):
        self.containerd, self.netns, self.hosts, self.dir = containerd, netns, hosts, directory
        self.index_port = index_port
        self.count = 0

    def _run_argv(self, image, env, mounts, detach):
        self.count += 1
        container = f"t{self.count}-{os.getpid()}"
        argv = ["run", "--with-ns", f"network:{self.netns.path}"]
        argv += ["--mount", f"type=bind,src={self.hosts},dst=/etc/hosts,options=rbind:ro"]
        for source, target in mounts:
            argv += ["--mount", f"type=bind,src={source},dst={target},options=rbind:ro"]
        for name, value in env.items():
            argv += ["--env", f"{name}={value}"]
        if detach:
            argv += ["--detach", "--log-uri", f"file://{self.dir}/{container}.log"]
        else:
            argv.append("--rm")
        return container, [*argv, image, container]

    def run(self, image, command, env=None, mounts=()):
        """The container's exit code and output; command follows the image's entrypoint,
        as a pod's `args` do (ctr run would otherwise replace the entrypoint)."""
        entrypoint = notebook_config("x") if "notebook" in image else base_config("x")
        _container, argv = self._run_argv(image, env or {}, mounts, detach=False)
        result = self.containerd.ctr(
            *argv, *entrypoint.entrypoint, *command, timeout=RUN_TIMEOUT, check=False
        )
        return result.returncode, result.stdout + result.stderr

    def start(self, image, env=None, mounts=()):
        """A detached container running the image's own entrypoint and command."""
        config = notebook_config("x")
        container, argv = self._run_argv(image, env or {}, mounts, detach=True)
        self.containerd.ctr(*argv, *config.entrypoint, *config.cmd)
        return container

    def logs(self, container) -> str:
        path = self.dir / f"{container}.log"
        return path.read_text() if path.exists() else ""

    def remove(self, container) -> None:
        self.containerd.ctr("tasks", "kill", "-s", "SIGKILL", container, check=False)
        for _ in range(50):
            if self.containerd.ctr("tasks", "delete", container, check=False).returncode == 0:
                break
            time.sleep(0.1)
        self.containerd.ctr("containers", "delete", container, check=False)


def dask(version):
    return f"ghcr.io/dask/dask:{version}"


def notebook(version):
    return f"ghcr.io/dask/dask-notebook:{version}"


@pytest.mark.parametrize("version", [OLD, NEW])
def test_images_carry_the_dask_version(node, version):
    for image in (dask(version), notebook(version), f"{dask(version)}-py3.13"):
        code, output = node.run(
            image, ["python", "-c", "import dask, distributed; print(dask.__version__)"]
        )
        assert code == 0, output
        assert output.strip().splitlines()[-1] == version, output


@pytest.mark.parametrize("version", [OLD, NEW])
def test_dask_computes_in_the_image(node, version):
    code, output = node.run(
        dask(version),
        [
            "python",
            "-c",
            "import dask.array as da; print(da.ones((100, 100), chunks=10).sum().compute())",
        ],
    )
    assert code == 0, output
    assert output.strip().splitlines()[-1] == "10000.0", output


@pytest.mark.parametrize(("version", "has_script"), [(OLD, True), (NEW, False)])
def test_console_scripts_follow_the_distributed_release(node, version, has_script):
    code, output = node.run(dask(version), ["sh", "-c", "command -v dask-scheduler"])
    assert (code == 0) == has_script, output
    code, output = node.run(dask(version), ["dask", "scheduler", "--help"])
    assert code == 0, output
    assert "--dashboard-address" in output, output


@pytest.mark.parametrize("image", [dask(NEW), notebook(NEW)])
def test_extra_pip_packages_install_through_the_sandbox_index(node, image):
    code, output = node.run(
        image,
        [
            "sh",
            "-c",
            f"id -u; python -c 'import {SMALL_PACKAGE}; print({SMALL_PACKAGE}.__version__)'",
        ],
        env={"EXTRA_PIP_PACKAGES": f"{SMALL_PACKAGE}=={SMALL_VERSION}"},
    )
    assert code == 0, output
    assert f"Looking in indexes: {index_url()}" in output, output
    lines = output.strip().splitlines()
    assert lines[-1] == SMALL_VERSION, output
    assert lines[-2] == ("1000" if "notebook" in image else "0"), output


@pytest.mark.parametrize("image", [dask(NEW), notebook(NEW)])
@pytest.mark.parametrize("variable", ["EXTRA_CONDA_PACKAGES", "EXTRA_APT_PACKAGES"])
def test_unsupported_package_variables_fail_with_the_reason(node, image, variable):
    code, output = node.run(image, ["echo", "COMMAND-RAN"], env={variable: "numba"})
    assert code != 0, output
    assert f'{variable}="numba" is not supported here' in output, output
    assert "COMMAND-RAN" not in output


def test_notebook_runs_as_jovyan(node):
    code, output = node.run(notebook(NEW), ["sh", "-c", "id -u; id -g; echo $HOME; pwd"])
    assert code == 0, output
    assert output.strip().splitlines()[-4:] == ["1000", "100", "/home/jovyan", "/home/jovyan"]


@pytest.mark.parametrize(
    ("jupyterlab_args", "reaches_other_address"),
    [
        ("", True),  # /etc/jupyter/jupyter_server_config.py: 0.0.0.0
        # Only the named file is loaded (upstream's behaviour): localhost only.
        ("--config /usr/local/etc/jupyter/jupyter_notebook_config.py", False),
    ],
)
def test_jupyter_listen_address(node, tmp_path, jupyterlab_args, reaches_other_address):
    config_dir = tmp_path / "jupyter-config"
    config_dir.mkdir()
    (config_dir / "jupyter_notebook_config.py").write_text(CHART_CONFIG)
    env = {"JUPYTERLAB_ARGS": jupyterlab_args} if jupyterlab_args else {}
    container = node.start(notebook(NEW), env=env, mounts=[(config_dir, "/usr/local/etc/jupyter")])
    try:
        up = node.netns.wait_for("127.0.0.1", 8888, JUPYTER_TIMEOUT)
        assert up, f"JupyterLab did not listen on 127.0.0.1:8888:\n{node.logs(container)}"
        assert node.netns.connects(OTHER_LOOPBACK, 8888) == reaches_other_address, node.logs(
            container
        )
    finally:
        node.remove(container)


def test_index_never_downloads_the_list_of_every_project(node):
    url = f"http://127.0.0.1:{node.index_port}/root/pypi"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as reply:
        index = json.load(reply)["result"]
    assert index["type"] == "mirror"
    assert index["mirror_no_project_list"] is True
    assert index["mirror_url"] == "https://pypi.org/simple/"
