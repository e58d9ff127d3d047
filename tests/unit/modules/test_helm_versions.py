"""Parsing of real `helm version` outputs (Helm 2, 3 and 4) and version ordering.

Every output below is a real one, with its source:
- Helm 2 cmd/helm/version.go (helm/helm v2 branch) and its docs (v2.0.0 example).
- Published terminal sessions and issues: helm/helm#5007 (v2.9.1 + "could not
  find tiller"), helm/helm#4398 (v2.10.0-rc.2 printing only the error),
  helm/helm#7113 (v3.0.0), helm.sh docs for `helm version` (v3.2.1, the
  `--template='Version: {{.Version}}'` example), tutorials with v2.14.3/v2.16.0,
  v2.16.1 `--short`, v2.17.0, v3.2.1 `--short` and Helm 4.1.3.
- The sandbox's own helm 4.3.1 binary (go install, so GitCommit is empty).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from ansible_collections.dask_gke.core.plugins.module_utils.helm_versions import (
    HelmVersionError,
    image_tag_version,
    parse_helm_version,
    parse_semver,
)

HELM2_DOCS = (
    'Client: &version.Version{SemVer:"v2.0.0", '
    'GitCommit:"ff52399e51bb880526e9cd0ed8386f6433b74da1", GitTreeState:"clean"}\n'
    'Server: &version.Version{SemVer:"v2.0.0", '
    'GitCommit:"b0c113dfb9f612a9add796549da66c0d294508a3", GitTreeState:"clean"}\n'
)
HELM2_17_CLIENT = (
    'Client: &version.Version{SemVer:"v2.17.0", '
    'GitCommit:"a690bad98af45b015bd3da1a41f6218b1a451dbe", GitTreeState:"clean"}\n'
)
HELM2_17_BOTH = HELM2_17_CLIENT + HELM2_17_CLIENT.replace("Client:", "Server:")
HELM2_MISMATCH = (
    'Client: &version.Version{SemVer:"v2.16.0", '
    'GitCommit:"e13bc94621d4ef666270cfbe734aaabf342a49bb", GitTreeState:"clean"}\n'
    'Server: &version.Version{SemVer:"v2.14.3", '
    'GitCommit:"0e7f3b6637f7af8fcfddb3d2941fcc7cbebb0085", GitTreeState:"clean"}\n'
)
HELM2_9_CLIENT = (
    'Client: &version.Version{SemVer:"v2.9.1", '
    'GitCommit:"20adb27c7c5868466912eebdf6664e7390ebe710", GitTreeState:"clean"}\n'
)
HELM2_SHORT = "Client: v2.16.1+gbbdfe5e\nServer: v2.16.1+gbbdfe5e\n"
HELM3_DOCS = (
    'version.BuildInfo{Version:"v3.2.1", GitCommit:"fe51cd1e31e6a202cba7dead9552a6d418ded79a", '
    'GitTreeState:"clean", GoVersion:"go1.13.10"}\n'
)
HELM3_0 = (
    'version.BuildInfo{Version:"v3.0.0", GitCommit:"e29ce2a54e96cd02ccfce88bee4f58bb6e2a28b6", '
    'GitTreeState:"clean", GoVersion:"go1.13.4"}\n'
)
HELM4_1 = (
    'version.BuildInfo{Version:"v4.1.3", GitCommit:"c94d381b03be117e7e57908edbf642104e00eb8f", '
    'GitTreeState:"clean", GoVersion:"go1.25.8", KubeClientVersion:"v1.35"}\n'
)
HELM4_SANDBOX = (
    'version.BuildInfo{Version:"v4.3.1", GitCommit:"", GitTreeState:"", '
    'GoVersion:"go1.26.8", KubeClientVersion:"v1.37"}\n'
)


@pytest.mark.parametrize(
    ("stdout", "stderr", "expected"),
    [
        (HELM2_DOCS, "", dict(client="2.0.0", server="2.0.0")),
        (HELM2_17_BOTH, "", dict(client="2.17.0", server="2.17.0")),
        (HELM2_MISMATCH, "", dict(client="2.16.0", server="2.14.3")),
        (
            HELM2_17_CLIENT,
            "Error: could not find tiller\n",
            dict(client="2.17.0", tiller_error="could not find tiller"),
        ),
        (
            HELM2_9_CLIENT,
            "Error: cannot connect to Tiller\n",
            dict(client="2.9.1", tiller_error="cannot connect to Tiller"),
        ),
        (
            HELM2_SHORT,
            "",
            dict(client="2.16.1", server="2.16.1", output_format="helm2-short"),
        ),
    ],
)
def test_helm2_outputs(stdout, stderr, expected):
    info = parse_helm_version(stdout, stderr)
    assert str(info.client) == expected["client"]
    assert info.client_major == 2
    assert (str(info.server) if info.server else None) == expected.get("server")
    assert info.tiller_error == expected.get("tiller_error", "")
    assert info.output_format == expected.get("output_format", "helm2")


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        (HELM3_DOCS, dict(client="3.2.1")),
        (HELM3_0, dict(client="3.0.0")),
        (HELM4_1, dict(client="4.1.3", kube="v1.35")),
        (HELM4_SANDBOX, dict(client="4.3.1", kube="v1.37")),
        ("v3.2.1+gfe51cd1\n", dict(client="3.2.1", output_format="short")),
        ("v3.12.2+g1e210a2\n", dict(client="3.12.2", output_format="short")),
        ("v4.3.1\n", dict(client="4.3.1", output_format="short")),
        ("Version: v3.2.1", dict(client="3.2.1", output_format="template")),
        ("v4.3.1,go1.26.8,", dict(client="4.3.1", output_format="template")),
    ],
)
def test_helm3_and_helm4_outputs(stdout, expected):
    info = parse_helm_version(stdout)
    assert str(info.client) == expected["client"]
    assert info.client_major == int(expected["client"][0])
    assert info.server is None
    assert info.kube_client_version == expected.get("kube", "")
    assert info.output_format == expected.get("output_format", "buildinfo")


@pytest.mark.parametrize(
    ("stdout", "stderr"),
    [
        # helm/helm#4398: v2.10.0-rc.2 printed only the error, no client line.
        ("", "Error: could not find a ready tiller pod\n"),
        ("", 'Error: unknown command "version" for "helm"\n'),
        ("Helm is a tool for managing Kubernetes charts.\n", ""),
        # Two different versions in a --template output: ambiguous.
        ("v3.2.1 v3.3.0\n", ""),
        ('version.BuildInfo{GitCommit:"fe51cd1e31e6a202cba7dead9552a6d418ded79a"}\n', ""),
    ],
)
def test_unknown_output_fails_quoting_it(stdout, stderr):
    with pytest.raises(HelmVersionError) as error:
        parse_helm_version(stdout, stderr)
    message = str(error.value)
    assert repr(stdout.strip()) in message or "no Version field" in message
    if stderr:
        assert stderr.strip() in message


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("3.9.9", "3.10.0"),
        ("v2.17.0", "3.0.0"),
        ("4.0.0-rc.1", "4.0.0"),
        ("4.0.0-alpha.1", "4.0.0-beta.2"),
        ("4.0.0-rc.2", "4.0.0-rc.10"),
        ("4.0.0-rc.1", "4.0.0-rc.1.1"),
        ("3.22.0", "v4.3.1"),
    ],
)
def test_version_order(lower, higher):
    assert parse_semver(lower) < parse_semver(higher)
    assert not parse_semver(higher) < parse_semver(lower)
    assert parse_semver(lower) <= parse_semver(lower)


def test_build_metadata_does_not_change_precedence():
    assert parse_semver("v2.16.1+gbbdfe5e") <= parse_semver("2.16.1")
    assert parse_semver("2.16.1") <= parse_semver("v2.16.1+gbbdfe5e")


@pytest.mark.parametrize("text", ["3", "3.8", "latest", "v3.8.x", ""])
def test_invalid_versions_are_rejected(text):
    with pytest.raises(HelmVersionError):
        parse_semver(text)


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("gcr.io/kubernetes-helm/tiller:v2.16.1", "2.16.1"),
        ("ghcr.io/helm/tiller:v2.17.0", "2.17.0"),
        ("registry.cn-hangzhou.aliyuncs.com/google_containers/tiller:v2.13.1", "2.13.1"),
        ("localhost:5000/helm/tiller:v2.14.3", "2.14.3"),
        ("localhost:5000/helm/tiller", None),
        ("ghcr.io/helm/tiller@sha256:" + "0" * 64, None),
        ("ghcr.io/helm/tiller:canary", None),
    ],
)
def test_image_tag_version(image, version):
    parsed = image_tag_version(image)
    assert (str(parsed) if parsed else None) == version


def _sandbox_bin_dir():
    build = Path(__file__).resolve().parents[3] / "sandbox" / "tools" / "build.sh"
    if os.environ.get("SANDBOX_BIN_DIR"):
        return Path(os.environ["SANDBOX_BIN_DIR"])
    if not build.exists():
        return None
    result = subprocess.run([str(build), "--print"], capture_output=True, text=True, check=False)
    return Path(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 else None


@pytest.mark.sandbox
@pytest.mark.parametrize(("binary", "major"), [("helm", 4), ("helm3", 3)])
@pytest.mark.parametrize("extra", [[], ["--short"], ["--template", "{{ .Version }}"]])
def test_real_helm_binaries(binary, major, extra):
    bin_dir = _sandbox_bin_dir()
    path = bin_dir / binary if bin_dir else None
    if path is None or not path.exists():
        pytest.skip(f"{binary} is not built yet (sandbox/tools/build.sh)")
    run = subprocess.run([str(path), "version", *extra], capture_output=True, text=True, check=True)
    info = parse_helm_version(run.stdout, run.stderr)
    assert info.client_major == major
    assert str(info.client) in run.stdout
    if not extra:
        assert info.output_format == "buildinfo"
        assert bool(info.kube_client_version) == (major == 4)
