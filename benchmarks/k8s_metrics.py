"""Kubernetes API calls counted from kube-apiserver's apiserver_request_total.

The sandbox's API servers have no audit log, so calls are counted by scraping
GET /metrics before and after what is measured. The counters do not say who
called; calls the cluster makes by itself are set apart as background (see
is_background: leases, Events, KWOK's node heartbeats and pod status, the
scheduler's bindings, the controllers' pods and status updates). Server-side
dry runs (kubernetes.core.k8s compares that way before it patches) change
nothing and are counted apart too. A watch is counted when it ends, which for
our modules is when their process exits.
"""

import base64
import re
import tempfile
from collections import Counter
from pathlib import Path

import requests
import yaml

READ_VERBS = frozenset({"GET", "LIST", "WATCH"})
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
# Resources only the control plane touches: leader election, Events, admission
# plugins (LimitRanger, ResourceQuota), the endpoint controllers.
CONTROL_PLANE_RESOURCES = frozenset(
    {"leases", "events", "limitranges", "resourcequotas", "endpoints", "endpointslices"}
)
SCRAPE_TIMEOUT = 15.0  # seconds for one GET /metrics

_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

DRY_RUN = "dry-run"  # suffix of the verb of a server-side dry run


def parse_request_totals(text: str) -> Counter:
    """apiserver_request_total summed over codes and versions, by (verb, resource, subresource).

    A dry run's verb gets the suffix " dry-run". Requests that name no resource
    (/metrics, /version, /openapi) are left out.
    """
    totals: Counter = Counter()
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        resource = labels.get("resource", "")
        if not resource:
            continue
        verb = labels.get("verb", "")
        if labels.get("dry_run"):
            verb = f"{verb} {DRY_RUN}"
        key = (verb, resource, labels.get("subresource", ""))
        totals[key] += int(float(match["value"]))
    return totals


def delta(before: Counter, after: Counter) -> Counter:
    """Calls made between two scrapes (counters only grow; negatives mean a restart)."""
    return Counter(
        {
            key: after[key] - before.get(key, 0)
            for key in after
            if after[key] - before.get(key, 0) > 0
        }
    )


def is_background(verb: str, resource: str, subresource: str) -> bool:
    """Whether the cluster makes this kind of call by itself (none of our tasks does).

    Our waits LIST nodes; KWOK's heartbeats GET and PATCH each node. Pods are
    created by the ReplicaSet controller, bound by the scheduler and their status
    set by KWOK; Deployments' and ReplicaSets' status by their controllers.
    """
    if resource in CONTROL_PLANE_RESOURCES:
        return True
    if resource == "nodes":
        return verb != "LIST"
    if resource == "pods":
        return subresource in {"status", "binding"} or verb == "POST"
    return resource in {"deployments", "replicasets"} and subresource == "status"


def classify(calls: Counter) -> dict:
    """Reads and writes, with background calls and dry runs set apart, and the detail by call."""
    summary = {
        "reads": 0,
        "writes": 0,
        "dry_run_writes": 0,
        "background_reads": 0,
        "background_writes": 0,
    }
    for (verb, resource, subresource), count in calls.items():
        background = is_background(verb, resource, subresource)
        if verb.endswith(DRY_RUN):
            summary["dry_run_writes"] += count
        elif verb in READ_VERBS:
            summary["background_reads" if background else "reads"] += count
        elif verb in WRITE_VERBS:
            summary["background_writes" if background else "writes"] += count
    summary["by_call"] = {
        " ".join(part for part in key if part): count for key, count in sorted(calls.items())
    }
    return summary


def kubeconfig_access(path: Path) -> tuple[str, str, str]:
    """(server URL, CA PEM, bearer token) of the first cluster and user of a kubeconfig."""
    config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    cluster = config["clusters"][0]["cluster"]
    token = config["users"][0]["user"]["token"]
    ca_pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
    return cluster["server"].rstrip("/"), ca_pem, token


def scrape(kubeconfig: Path) -> Counter:
    """GET /metrics of the kubeconfig's API server (loopback, never through a proxy)."""
    server, ca_pem, token = kubeconfig_access(kubeconfig)
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as ca_file, requests.Session() as session:
        ca_file.write(ca_pem)
        ca_file.flush()
        session.trust_env = False  # the sandbox env sets HTTPS_PROXY for the GKE API only
        response = session.get(
            f"{server}/metrics",
            headers={"Authorization": f"Bearer {token}"},
            verify=ca_file.name,
            timeout=SCRAPE_TIMEOUT,
        )
        response.raise_for_status()
        return parse_request_totals(response.text)


def try_scrape(kubeconfig: Path | None) -> tuple[Counter | None, str | None]:
    """scrape(), or (None, why) when there is no kubeconfig or the API server does not answer."""
    if kubeconfig is None or not Path(kubeconfig).is_file():
        return None, f"no kubeconfig at {kubeconfig}"
    try:
        return scrape(kubeconfig), None
    except Exception as error:  # any failure is reported as text; the run carries on
        return None, f"{type(error).__name__}: {error}"
