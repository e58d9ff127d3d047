"""Kubernetes API call counts from apiserver_request_total."""

import base64
from collections import Counter

import pytest
import yaml

from benchmarks import k8s_metrics


def sample(verb, resource, value, *, group="", subresource="", code="200", dry_run=""):
    """One apiserver_request_total line as kube-apiserver prints it."""
    labels = (
        f'code="{code}",component="apiserver",dry_run="{dry_run}",group="{group}",'
        f'resource="{resource}",scope="resource",subresource="{subresource}",'
        f'verb="{verb}",version="v1"'
    )
    return f"apiserver_request_total{{{labels}}} {value}"


METRICS = "\n".join(
    [
        "# HELP apiserver_request_total [STABLE] Counter of apiserver requests",
        "# TYPE apiserver_request_total counter",
        sample("GET", "deployments", 12, group="apps"),
        sample("GET", "deployments", 3, group="apps", code="404"),
        sample("LIST", "services", 2),
        sample("WATCH", "services", 1),
        sample("PUT", "leases", 40, group="coordination.k8s.io"),
        sample("PATCH", "nodes", 7, subresource="status"),
        sample("POST", "secrets", 1, code="201"),
        sample("PATCH", "namespaces", 2, dry_run="All"),  # kubernetes.core.k8s comparing
        sample("GET", "", 5, subresource="/metrics"),  # a non-resource request
        'apiserver_request_duration_seconds_bucket{verb="GET",resource="deployments",le="0.1"} 99',
    ]
)


def test_parse_sums_codes_and_skips_non_resource_requests_and_other_metrics():
    totals = k8s_metrics.parse_request_totals(METRICS)
    assert totals == Counter(
        {
            ("GET", "deployments", ""): 15,
            ("LIST", "services", ""): 2,
            ("WATCH", "services", ""): 1,
            ("PUT", "leases", ""): 40,
            ("PATCH", "nodes", "status"): 7,
            ("POST", "secrets", ""): 1,
            ("PATCH dry-run", "namespaces", ""): 2,
        }
    )


def test_delta_keeps_only_calls_made_between_the_scrapes():
    before = Counter({("GET", "deployments", ""): 10, ("PUT", "leases", ""): 40})
    after = Counter(
        {("GET", "deployments", ""): 14, ("PUT", "leases", ""): 40, ("LIST", "nodes", ""): 2}
    )
    assert k8s_metrics.delta(before, after) == Counter(
        {("GET", "deployments", ""): 4, ("LIST", "nodes", ""): 2}
    )


def test_classify_sets_background_calls_apart():
    summary = k8s_metrics.classify(k8s_metrics.parse_request_totals(METRICS))
    assert summary["reads"] == 18
    assert summary["writes"] == 1  # the secret; lease and node status updates are background
    assert summary["dry_run_writes"] == 2
    assert summary["background_writes"] == 47
    assert summary["background_reads"] == 0
    assert summary["by_call"]["PATCH nodes status"] == 7
    assert summary["by_call"]["GET deployments"] == 15


def test_kubeconfig_access_reads_server_ca_and_token(tmp_path):
    ca_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": "https://127.0.0.1:32001/",
                            "certificate-authority-data": base64.b64encode(
                                ca_pem.encode()
                            ).decode(),
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": "secret-token"}}],
            }
        )
    )
    assert k8s_metrics.kubeconfig_access(kubeconfig) == (
        "https://127.0.0.1:32001",
        ca_pem,
        "secret-token",
    )


def test_try_scrape_reports_a_missing_kubeconfig(tmp_path):
    counts, error = k8s_metrics.try_scrape(tmp_path / "absent")
    assert counts is None
    assert "no kubeconfig" in error


@pytest.mark.parametrize(
    ("call", "background"),
    [
        (("LIST", "nodes", ""), False),  # the node wait
        (("GET", "nodes", ""), True),  # KWOK's heartbeat
        (("PATCH", "nodes", ""), True),
        (("PATCH", "nodes", "status"), True),
        (("POST", "pods", ""), True),  # the ReplicaSet controller
        (("POST", "pods", "binding"), True),  # the scheduler
        (("GET", "pods", ""), False),
        (("PUT", "deployments", "status"), True),
        (("GET", "deployments", ""), False),  # the rollout wait
        (("PATCH", "services", ""), False),  # the expose task
        (("LIST", "limitranges", ""), True),  # an admission plugin
        (("PATCH", "namespaces", ""), False),
    ],
)
def test_is_background(call, background):
    assert k8s_metrics.is_background(*call) is background
