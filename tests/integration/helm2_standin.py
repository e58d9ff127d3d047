#!/usr/bin/env python3
"""Stand-in for a Helm 2.17.0 client: `helm version` only, printing what Helm 2 prints.

No Helm 2 can be built here (its module needs Kubernetes libraries of 2020), so the
legacy Tiller mode's Helm 2 client check runs against this script. Like Helm 2, it asks
the cluster for Tiller: the tiller-deploy Deployment in $TILLER_NAMESPACE (default
kube-system), through $KUBECONFIG. Its outputs are Helm 2's own (cmd/helm/version.go
and the tunnel set-up of helm/helm v2.17.0):

- Tiller ready: the Client line, then a Server line with the version of Tiller's image;
- no Tiller: the Client line, "Error: could not find tiller" on stderr, exit status 1;
- no ready pod: the Client line, "Error: could not find a ready tiller pod", status 1.

HELM2_STANDIN_TILLER=absent|unready|<version> answers without asking a cluster (unit tests).
"""

import json
import os
import sys

CLIENT = "v2.17.0"
# GitCommit of Helm 2 releases (helm/helm v2 tags); other versions print it empty.
COMMITS = {
    "v2.17.0": "a690bad98af45b015bd3da1a41f6218b1a451dbe",
    "v2.16.0": "e13bc94621d4ef666270cfbe734aaabf342a49bb",
    "v2.14.3": "0e7f3b6637f7af8fcfddb3d2941fcc7cbebb0085",
}


def line(side, version):
    commit = COMMITS.get(version, "")
    state = "clean" if commit else ""
    fields = f'SemVer:"{version}", GitCommit:"{commit}", GitTreeState:"{state}"'
    return f"{side}: &version.Version{{{fields}}}"


def tiller_from_cluster(namespace):
    """'absent', 'unready' or the version tag of the tiller-deploy image."""
    # Imported here: the unit tests' answers need no kubernetes package.
    from kubernetes import client, config  # noqa: PLC0415
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    api = client.AppsV1Api(config.new_client_from_config(os.environ.get("KUBECONFIG")))
    try:
        deployment = api.read_namespaced_deployment("tiller-deploy", namespace)
    except ApiException as exc:
        if exc.status == 404:
            return "absent"
        raise
    if not (deployment.status.ready_replicas or 0):
        return "unready"
    image = deployment.spec.template.spec.containers[0].image
    return image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "unready"


def main(argv):
    if argv[1:2] != ["version"]:
        print(
            f"Error: this Helm 2 stand-in only runs `helm version`, not {json.dumps(argv[1:])}",
            file=sys.stderr,
        )
        return 1
    print(line("Client", CLIENT))
    namespace = os.environ.get("TILLER_NAMESPACE", "kube-system")
    tiller = os.environ.get("HELM2_STANDIN_TILLER") or tiller_from_cluster(namespace)
    if tiller == "absent":
        print("Error: could not find tiller", file=sys.stderr)
        return 1
    if tiller == "unready":
        print("Error: could not find a ready tiller pod", file=sys.stderr)
        return 1
    print(line("Server", tiller))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
