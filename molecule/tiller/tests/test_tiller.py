"""Legacy Tiller: objects and RBAC, the Helm 2 client check, helm_tiller_version's report,
leftover report, removal."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration import harness

# (tags, extra variables, what the run's output or failure says)
HELM_CHECKS = harness.load_cases(
    Path(__file__).with_name("helm_checks.yml"), "tags", "vars", "says"
)


@pytest.fixture(scope="module")
def api(kubeconfig):
    return harness.kube_client(kubeconfig)


@pytest.fixture(scope="module")
def tiller(settings) -> dict[str, str]:
    namespace = settings["helm_tiller_namespace"]
    account = settings["helm_tiller_service_account"]
    image = settings["helm_tiller_image"]
    return {
        "namespace": namespace,
        "account": account,
        "user": f"system:serviceaccount:{namespace}:{account}",
        "image": image,
        "version": image.rsplit(":v", 1)[-1],
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
    assert result["server_version"] == tiller["version"]
    assert result["client_major"] == 4


@pytest.mark.parametrize(("tags", "extra_vars", "says"), HELM_CHECKS)
def test_a_deploy_checks_the_tiller(tiller, tags, extra_vars, says, request):
    [(where, messages)] = says.items()  # the run's output (it succeeds), or its failure
    run = harness.deploy(tags=tags, extra_vars=extra_vars, label=request.node.callspec.id)
    assert (run.returncode == 0) is (where == "output"), run.describe()
    # Warnings and failures wrap at the terminal width: compare with whitespace collapsed.
    text = " ".join((run.output if where == "output" else run.failure()).split())
    for message in messages:
        assert message.format(**tiller) in text, run.describe()


@pytest.fixture(scope="module")
def removal(tiller):
    return harness.deploy(
        tags="tiller",
        extra_vars={"helm_tiller_legacy_enabled": True, "helm_tiller_state": "absent"},
        label="tiller-removal",
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
