"""dask_gke.core as a user installs it (`make collection-test`).

The tarball `make collection` builds goes into an empty collections path of a clean
virtualenv that has only ansible-core and the Python packages of meta/requirements.txt,
with the collections it needs (kubernetes.core, google.cloud, and ansible.posix for the
runbook's profile_tasks) rebuilt from the copies the `ansible` package bundles (no
Galaxy server is reachable here). Then, from that virtualenv and outside the repository:
ansible-doc, ansible-test sanity on the installed collection, ansible-builder's build
context of execution-environment.yml, and tests/collection/runbook/, FQCN roles and
modules only, against the sandbox: deploy, --tags upgrade, cleanup.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from tests.integration import harness
from tests.unit.sandbox.commands import run
from tools.build_collection import build

REPO = harness.REPO_ROOT
RUNBOOK = Path(__file__).resolve().parent / "runbook"
# The user's side lives outside the repository (ansible-test would list the installed
# collection's files through the repository's git and find them all ignored); the logs
# of the runbook's runs stay in artifacts/.
WORK = Path(tempfile.gettempdir()) / f"dask-gke-collection-test-{os.getuid()}"
LOGS = REPO / "artifacts" / "collection-test"
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
VERSION = str(GALAXY["version"])
# Where ansible-test keeps its sanity virtualenvs between runs (see ansible_test_home).
ANSIBLE_TEST_HOME = Path.home() / ".cache" / "dask-gke" / "ansible-test-home"
# Collections the runbook needs besides ours: the dependencies, and the callback of its cfg.
BUNDLED = ("kubernetes.core", "google.cloud", "ansible.posix")
RUN_TIMEOUT = 900  # seconds, for one playbook run on the sandbox


def describe(result: subprocess.CompletedProcess, tail: int = 80) -> str:
    lines = (result.stdout + result.stderr).rstrip().splitlines()
    return f"$ {' '.join(result.args)}\nrc={result.returncode}\n" + "\n".join(lines[-tail:])


# ---- the artifacts a user has -----------------------------------------------------------


def rebuild_bundled(name: str, destination: Path) -> Path:
    """A tarball of the copy of collection `name` that the `ansible` package installed.

    That copy has MANIFEST.json but not every file its FILES.json lists, so it is built
    again from a galaxy.yml made of its own collection_info.
    """
    import ansible_collections  # noqa: PLC0415 - the main venv's, for its bundled copies

    namespace, short = name.split(".")
    source = next(
        Path(p) / namespace / short
        for p in ansible_collections.__path__
        if (Path(p) / namespace / short / "MANIFEST.json").is_file()
    )
    info = json.loads((source / "MANIFEST.json").read_text())["collection_info"]
    staged = destination / "src" / namespace / short
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(
        source,
        staged,
        ignore=shutil.ignore_patterns("__pycache__", "MANIFEST.json", "FILES.json"),
    )
    galaxy = {key: value for key, value in info.items() if value not in (None, "", [], {})}
    (staged / "galaxy.yml").write_text(yaml.safe_dump(galaxy))
    result = run(
        [
            Path(sys.executable).parent / "ansible-galaxy",
            "collection",
            "build",
            staged,
            "--output-path",
            destination,
            "--force",
        ],
    )
    assert result.returncode == 0, describe(result)
    return destination / f"{namespace}-{short}-{info['version']}.tar.gz"


@pytest.fixture(scope="session")
def tarballs() -> dict[str, Path]:
    shutil.rmtree(WORK, ignore_errors=True)
    shutil.rmtree(LOGS, ignore_errors=True)
    (WORK / "dist").mkdir(parents=True)
    LOGS.mkdir(parents=True, mode=0o700)  # the runs' output may name tokens' files
    built = {"dask_gke.core": build(WORK / "dist")}
    for name in BUNDLED:
        built[name] = rebuild_bundled(name, WORK / "dist")
    return built


@pytest.fixture(scope="session")
def user(tarballs) -> dict:
    """The clean virtualenv and its collections path, ready to use."""
    environment = WORK / "venv"
    venv.create(environment, with_pip=True, clear=True)
    bin_dir = environment / "bin"
    core = f"ansible-core=={metadata.version('ansible-core')}"
    pip = run(
        [
            bin_dir / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            core,
            "-r",
            REPO / "meta" / "requirements.txt",
        ],
        timeout=900,
    )
    assert pip.returncode == 0, describe(pip)
    collections = WORK / "collections"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(WORK / "home"),
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_CONFIG": str(RUNBOOK / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(WORK / "home" / "tmp"),
        # The async jobs' results: the async wrapper and async_status must agree on the
        # place, which "~" does not guarantee with HOME moved.
        "ANSIBLE_ASYNC_DIR": str(WORK / "home" / ".ansible_async"),
        "LANG": "C.UTF-8",
    }
    if "DASK_GKE_SANDBOX_DIR" in os.environ:
        env["DASK_GKE_SANDBOX_DIR"] = os.environ["DASK_GKE_SANDBOX_DIR"]
    install = run(
        [
            bin_dir / "ansible-galaxy",
            "collection",
            "install",
            "--offline",
            "-p",
            collections,
            *tarballs.values(),
        ],
        env=env,
        cwd=WORK,
    )
    assert install.returncode == 0, describe(install)
    return {"bin": bin_dir, "env": env, "collections": collections}


def installed_path(user) -> Path:
    return user["collections"] / "ansible_collections" / "dask_gke" / "core"


# ---- what runs without the sandbox --------------------------------------------------------


def test_the_clean_virtualenv_has_only_ansible_core_and_the_collections(user):
    listed = run(
        [user["bin"] / "ansible-galaxy", "collection", "list", "--format", "json"],
        env=user["env"],
        cwd=WORK,
    )
    assert listed.returncode == 0, describe(listed)
    found = {
        name: entry["version"]
        for path in json.loads(listed.stdout).values()
        for name, entry in path.items()
    }
    assert found["dask_gke.core"] == VERSION
    assert sorted(found) == sorted(["dask_gke.core", *BUNDLED])
    packages = run([user["bin"] / "python", "-m", "pip", "list", "--format", "json"])
    names = {p["name"].lower() for p in json.loads(packages.stdout)}
    assert "ansible" not in names  # the community package (and its collections) is absent
    assert "ansible-core" in names


def test_ansible_doc_renders_the_installed_modules(user):
    for module in ("wait_for_lb_ip", "wait_for_nodes", "wait_for_rollout", "helm_tiller_version"):
        doc = run(
            [user["bin"] / "ansible-doc", f"dask_gke.core.{module}"], env=user["env"], cwd=WORK
        )
        assert doc.returncode == 0, describe(doc)
        assert doc.stderr == "", describe(doc)
        assert f"MODULE dask_gke.core.{module} ({installed_path(user)}" in doc.stdout


def ansible_test_home(user) -> Path:
    """HOME for ansible-test: its sanity virtualenvs are kept there between runs.

    ansible-test bootstraps pip into each sanity virtualenv with a get-pip script it
    downloads from a host this machine cannot reach; a stand-in of that script takes
    Python's bundled pip (ensurepip), and pip then installs the pinned requirements of
    each sanity test from the package index.
    """
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    probe = run(
        [
            user["bin"] / "python",
            "-c",
            "from types import SimpleNamespace\n"
            "from ansible_test._internal.python_requirements import get_venv_packages\n"
            f"print(get_venv_packages(SimpleNamespace(version={python!r}))['pip'])",
        ],
    )
    assert probe.returncode == 0, describe(probe)
    pip_version = probe.stdout.strip()
    cache = ANSIBLE_TEST_HOME / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / f"get_pip_{pip_version.replace('.', '_')}.py").write_text(
        '"""Stand-in for get-pip.py: the bundled pip (ensurepip), then pip itself."""\n'
        "import ensurepip\nimport subprocess\nimport sys\n\n"
        "ensurepip.bootstrap()\n"
        'packages = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]\n'
        'subprocess.check_call([sys.executable, "-m", "pip", "install", *packages])\n'
    )
    return ANSIBLE_TEST_HOME


def test_ansible_test_sanity_passes_on_the_installed_collection(user):
    env = {**user["env"], "HOME": str(ansible_test_home(user))}
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    sanity = run(
        [user["bin"] / "ansible-test", "sanity", "--python", python, "--color", "no"],
        env=env,
        cwd=installed_path(user),
        timeout=1800,
    )
    (LOGS / "sanity.log").write_text(sanity.stdout + sanity.stderr)
    assert sanity.returncode == 0, describe(sanity, tail=120)
    for test in ("validate-modules", "ansible-doc", "import", "pylint", "runtime-metadata"):
        assert f'Running sanity test "{test}"' in sanity.stdout + sanity.stderr, test


def versions_env() -> dict[str, str]:
    lines = (REPO / "sandbox" / "tools" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_ansible_builder_creates_the_execution_environment_context(user):
    build(REPO / "dist")  # what `make collection` leaves for execution-environment.yml
    context = WORK / "ee-context"
    builder = run(
        [
            Path(sys.executable).parent / "ansible-builder",
            "create",
            "--file",
            REPO / "execution-environment.yml",
            "--context",
            context,
            "--output-filename",
            "Containerfile",
        ],
        cwd=REPO,
    )
    assert builder.returncode == 0, describe(builder)
    containerfile = (context / "Containerfile").read_text()
    assert (context / "_build" / "collections" / f"dask_gke-core-{VERSION}.tar.gz").is_file()
    assert "ansible-galaxy collection install --offline --no-deps" in containerfile
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert {c["name"] for c in galaxy["collections"]} == {*BUNDLED}
    assert f"ansible-core=={metadata.version('ansible-core')}" in containerfile
    tools = versions_env()
    assert f"ARG HELM_VERSION={tools['HELM4_VERSION']}" in containerfile
    assert f"ARG KUBECTL_VERSION={tools['K8S_VERSION']}" in containerfile
    assert "google-cloud-cli-gke-gcloud-auth-plugin" in containerfile


def test_ansible_builder_finds_the_collection_python_requirements(user):
    # What the image build runs on its collections: here on the clean venv's.
    introspect = run(
        [Path(sys.executable).parent / "ansible-builder", "introspect", user["collections"]]
    )
    assert introspect.returncode == 0, describe(introspect)
    marker = "  # from collection dask_gke.core"
    found = [
        line.removesuffix(marker)
        for line in yaml.safe_load(introspect.stdout)["python"]
        if line.endswith(marker)
    ]
    pinned = [
        line
        for line in (REPO / "meta" / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert found == pinned


# ---- the runbook on the sandbox: deploy, --tags upgrade, cleanup --------------------------


@pytest.fixture(scope="module")
def sandbox() -> dict[str, str]:
    return harness.sandbox_env()


@pytest.fixture(scope="module")
def admin(sandbox) -> harness.AdminApi:
    api = harness.AdminApi(sandbox["SANDBOX_ADMIN_URL"])
    if not api.healthy():
        raise harness.SandboxNotRunning(f"{api.base_url}/healthz does not answer")
    api.clear_faults()
    return api


@pytest.fixture(scope="module")
def settings(sandbox) -> dict:
    """The sandbox inventory's values of the variables the checks below read."""
    names = (
        "gke_cluster_name",
        "gke_cluster_kubeconfig_path",
        "dask_chart_release",
        "dask_chart_namespace",
    )
    return harness.resolve_settings(names)


def runbook(user, playbook: str, label: str, *args: str) -> subprocess.CompletedProcess:
    """ansible-playbook of the clean venv, outside the repository, on the sandbox inventory."""
    result = run(
        [
            user["bin"] / "ansible-playbook",
            "-i",
            REPO / "inventories" / "sandbox",
            RUNBOOK / playbook,
            "-e",
            f"runbook_report={WORK / 'report.json'}",
            *args,
        ],
        env=user["env"],
        cwd=WORK,
        timeout=RUN_TIMEOUT,
    )
    (LOGS / f"{label}.log").write_text(result.stdout + result.stderr)
    return result


@pytest.fixture(scope="module")
def deployed(user, admin):
    admin.clear_requests()
    return runbook(user, "deploy.yml", "deploy")


def test_runbook_deploys(deployed, admin, sandbox, settings):
    assert deployed.returncode == 0, describe(deployed)
    cluster = admin.cluster(settings["gke_cluster_name"])
    assert cluster and cluster["status"] == "RUNNING", cluster
    kubeconfig = Path(settings["gke_cluster_kubeconfig_path"])
    release = harness.helm_release(
        sandbox, kubeconfig, settings["dask_chart_release"], settings["dask_chart_namespace"]
    )
    assert release.get("status") == "deployed", release


def test_the_roles_ran_from_the_collection(deployed):
    for role in ("gke_cluster", "helm_tiller", "dask_chart"):
        assert f"TASK [dask_gke.core.{role} : " in deployed.stdout, role
    assert "TASK [gke_cluster : " not in deployed.stdout


def test_the_runbook_s_own_module_calls_saw_the_deployment(deployed):
    assert deployed.returncode == 0, describe(deployed)
    report = json.loads((WORK / "report.json").read_text())
    assert report["dask_gke_version"] == VERSION
    assert int(report["helm"].split(".")[0]) in (3, 4)
    addresses = {name: entry["ip"] for name, entry in report["services"].items()}
    assert set(addresses) == {"dask-scheduler", "dask-jupyter"}
    assert all(ip and ip.startswith("127.") for ip in addresses.values()), addresses


@pytest.fixture(scope="module")
def upgraded(deployed, user, admin, sandbox, settings):
    assert deployed.returncode == 0, describe(deployed)
    kubeconfig = Path(settings["gke_cluster_kubeconfig_path"])
    where = (settings["dask_chart_release"], settings["dask_chart_namespace"])
    before = harness.helm_release(sandbox, kubeconfig, *where)
    admin.clear_requests()
    packages = json.dumps({"dask_chart_extra_pip_packages": ["s3fs", "xarray"]})
    result = runbook(user, "deploy.yml", "upgrade", "--tags", "upgrade", "-e", packages)
    after = harness.helm_release(sandbox, kubeconfig, *where)
    values = harness.helm(
        sandbox, kubeconfig, "get", "values", where[0], "-n", where[1], "-o", "json"
    )
    return result, admin.requests(), before, after, values.stdout


def test_runbook_upgrades_through_helm_only(upgraded):
    result, gke_calls, before, after, values = upgraded
    assert result.returncode == 0, describe(result)
    assert gke_calls == [], harness.describe_requests(gke_calls)
    assert int(after["revision"]) == int(before["revision"]) + 1
    assert "xarray" in values


@pytest.fixture(scope="module")
def cleaned(upgraded, user, admin, settings):
    name = settings["gke_cluster_name"]
    return runbook(user, "cleanup.yml", "cleanup", "-e", f"cleanup_confirm_cluster={name}")


def test_runbook_cleans_up(cleaned, admin, settings):
    assert cleaned.returncode == 0, describe(cleaned)
    assert admin.cluster(settings["gke_cluster_name"]) is None
    assert not Path(settings["gke_cluster_kubeconfig_path"]).exists()
