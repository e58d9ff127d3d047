"""Legacy Tiller: objects and RBAC, the Helm 2 client check, helm_tiller_version's report,
leftover report, removal."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration import harness

RUN_TIMEOUT = 600  # seconds
# Default mode: no Tiller managed, so no Helm 2 client to check against it either.
DEFAULT_MODE = {"helm_tiller_legacy_enabled": False, "helm_tiller_legacy_client": ""}


@pytest.fixture(scope="module")
def api(kubeconfig):
    return harness.kube_client(kubeconfig)


@pytest.fixture(scope="module")
def tiller(settings) -> dict[str, str]:
    namespace = settings["helm_tiller_namespace"]
    account = settings["helm_tiller_service_account"]
    return {
        "namespace": namespace,
        "account": account,
        "user": f"system:serviceaccount:{namespace}:{account}",
        "image": settings["helm_tiller_image"],
    }


def tiller_objects(api, tiller) -> list[str]:
    """Every Tiller object that exists: ServiceAccount, Deployment, Service, bindings."""
    core, apps, rbac = (
        client.CoreV1Api(api),
        client.AppsV1Api(api),
        client.RbacAuthorizationV1Api(api),
    )
    found = []
    reads = {
        "ServiceAccount": lambda: core.read_namespaced_service_account(
            tiller["account"], tiller["namespace"]
        ),
        "Deployment": lambda: apps.read_namespaced_deployment("tiller-deploy", tiller["namespace"]),
        "Service": lambda: core.read_namespaced_service("tiller-deploy", tiller["namespace"]),
    }
    for kind, read in reads.items():
        try:
            read()
            found.append(kind)
        except ApiException as exc:
            if exc.status != 404:
                raise
    # List items carry no kind: name each binding by the list it came from.
    bindings = [
        *(("ClusterRoleBinding", b) for b in rbac.list_cluster_role_binding().items),
        *(("RoleBinding", b) for b in rbac.list_role_binding_for_all_namespaces().items),
    ]
    for kind, binding in bindings:
        for subject in binding.subjects or []:
            if (
                subject.kind == "ServiceAccount"
                and subject.name == tiller["account"]
                and subject.namespace == tiller["namespace"]
            ):
                where = f"{binding.metadata.namespace}/" if binding.metadata.namespace else ""
                found.append(f"{kind} {where}{binding.metadata.name}")
    return found


@pytest.fixture(scope="module")
def can_i(sandbox, kubeconfig):
    """`can_i(user, verb, resource, *flags)`: kubectl auth can-i's answer, yes or no."""

    def ask(user: str, *request: str) -> str:
        result = harness.kubectl(sandbox, kubeconfig, "auth", "can-i", *request, f"--as={user}")
        # can-i exits 1 for "no"; anything else than yes/no is an error worth showing.
        answer = result.stdout.strip()
        assert answer in ("yes", "no"), f"kubectl auth can-i: {result.stdout}{result.stderr}"
        return answer

    return ask


def tiller_report(sandbox, kubeconfig, tiller, expect: str) -> dict:
    return harness.run_module(
        "dask_gke.core.helm_tiller_version",
        {
            "binary_path": sandbox["HELM_BIN"],
            "tiller": expect,
            "tiller_namespace": tiller["namespace"],
            "kubeconfig": str(kubeconfig),
        },
        label=f"helm_tiller_version-{expect}",
    )


def test_tiller_objects_installed(api, tiller):
    found = tiller_objects(api, tiller)
    assert {"ServiceAccount", "Deployment", "Service"} <= set(found), found
    deployment = client.AppsV1Api(api).read_namespaced_deployment(
        "tiller-deploy", tiller["namespace"]
    )
    pod = deployment.spec.template.spec
    assert pod.service_account_name == tiller["account"]
    assert pod.containers[0].image == tiller["image"]


def test_bindings_grant_tiller_s_account_only(tiller, api):
    bindings = [name for name in tiller_objects(api, tiller) if " " in name]
    assert bindings == [f"ClusterRoleBinding {tiller['account']}"], bindings


@pytest.mark.parametrize(
    "access",
    [
        ("create", "deployments", True),
        ("delete", "secrets", True),
        ("create", "clusterroles", False),
    ],
    ids=["deployments", "secrets", "cluster-scope"],
)
def test_tiller_rbac_is_cluster_admin(can_i, tiller, namespace, access):
    verb, resource, namespaced = access
    scope = ["--namespace", namespace] if namespaced else []
    assert can_i(tiller["user"], verb, resource, *scope) == "yes"


def test_other_service_accounts_get_nothing(can_i, tiller, namespace):
    # The control of the RBAC test: can-i does say "no" on this cluster.
    other = f"system:serviceaccount:{tiller['namespace']}:default"
    assert can_i(other, "create", "deployments", "--namespace", namespace) == "no"


def test_helm_tiller_version_reports_tiller(sandbox, kubeconfig, tiller):
    result = tiller_report(sandbox, kubeconfig, tiller, "present")
    assert not result.get("failed"), result.get("msg")
    assert result["tiller_present"] is True
    assert result["tiller_ready"] is True
    assert result["tiller_image"] == tiller["image"]
    assert result["server_version"] == tiller["image"].rsplit(":v", 1)[-1]
    assert result["client_major"] == 4


def test_default_mode_reports_the_leftover_tiller(tiller):
    run = harness.run_playbook(
        "deploy.yml",
        tags="helm",
        extra_vars=DEFAULT_MODE,
        label="default-mode-leftover",
        timeout=RUN_TIMEOUT,
    )
    assert run.returncode == 0, run.describe()
    # Warnings wrap at the terminal width: compare with whitespace collapsed.
    output = " ".join(run.output.split())
    assert "[WARNING]" in output, run.describe()
    assert "Tiller found" in output, run.describe()


def test_default_mode_can_fail_on_the_leftover_tiller(tiller):
    run = harness.run_playbook(
        "deploy.yml",
        tags="helm",
        extra_vars={**DEFAULT_MODE, "helm_tiller_leftover_action": "fail"},
        label="default-mode-leftover-fail",
        timeout=RUN_TIMEOUT,
    )
    assert run.returncode != 0, run.describe()
    failure = " ".join(run.failure().split())
    assert "Tiller found" in failure, run.describe()


def test_legacy_mode_checks_the_helm2_client_against_tiller(tiller):
    run = harness.run_playbook(
        "deploy.yml", tags="tiller", label="legacy-client-check", timeout=RUN_TIMEOUT
    )
    assert run.returncode == 0, run.describe()
    output = " ".join(run.output.split())
    version = tiller["image"].rsplit(":v", 1)[-1]
    assert f"Tiller {version} ready in {tiller['namespace']}" in output, run.describe()
    assert "Helm 2 client 2.17.0" in output, run.describe()
    assert "works with it: same minor version" in output, run.describe()


def test_legacy_mode_fails_on_a_tiller_the_helm2_client_refuses(tiller):
    run = harness.run_playbook(
        "deploy.yml",
        tags="tiller",
        extra_vars={"helm_tiller_image": "ghcr.io/helm/tiller:v2.16.0"},
        label="legacy-client-mismatch",
        timeout=RUN_TIMEOUT,
    )
    assert run.returncode != 0, run.describe()
    failure = " ".join(run.failure().split())
    assert "Helm 2 client 2.17.0 and Tiller 2.16.0 differ in minor version" in failure, (
        run.describe()
    )


@pytest.fixture(scope="module")
def removal(tiller):
    return harness.run_playbook(
        "deploy.yml",
        tags="tiller",
        extra_vars={"helm_tiller_legacy_enabled": True, "helm_tiller_state": "absent"},
        label="tiller-removal",
        timeout=RUN_TIMEOUT,
    )


def test_removal_succeeds(removal):
    assert removal.returncode == 0, removal.describe()


def test_removal_leaves_nothing(removal, api, tiller):
    assert tiller_objects(api, tiller) == []


def test_removed_tiller_account_has_no_rights(removal, can_i, tiller, namespace):
    assert can_i(tiller["user"], "create", "deployments", "--namespace", namespace) == "no"


def test_helm_tiller_version_reports_no_tiller(removal, sandbox, kubeconfig, tiller):
    result = tiller_report(sandbox, kubeconfig, tiller, "absent")
    assert not result.get("failed"), result.get("msg")
    assert result["tiller_present"] is False
    assert result["server_version"] is None
