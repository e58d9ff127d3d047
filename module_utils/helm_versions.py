# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse the output of ``helm version`` (Helm 2, 3 and 4) and compare versions.

Shared by the dask-gke modules; no Ansible imports so it can be unit tested alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A SemVer 2.0 version as Helm prints it: optional "v", MAJOR.MINOR.PATCH,
# optional -prerelease and +build metadata (Helm's --short adds "+g<commit>").
_SEMVER = (
    r"v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
_SEMVER_RE = re.compile(rf"^{_SEMVER}$")
# In free text (a --template output) a version must carry the "v" Helm prints,
# so that numbers such as "go1.26.8" or "v1.37" are not mistaken for it.
_VERSION_TOKEN_RE = re.compile(r"(?<![\w.])v\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?")
_GO_FIELD_RE = re.compile(r'(\w+):"([^"]*)"')
_HELM2_LINE_RE = re.compile(r"^(?P<side>Client|Server):\s*(?P<rest>.+)$")
_BUILDINFO_RE = re.compile(r"^version\.BuildInfo\{(?P<fields>.*)\}$")
_HELM2_STRUCT_RE = re.compile(r"^&version\.Version\{(?P<fields>.*)\}$")
# Errors Helm 2 prints when it cannot reach Tiller (cmd/helm/version.go and the
# tunnel set-up): the client line is still valid output.
_TILLER_ERROR_RE = re.compile(
    r"^Error: (?P<msg>(could not find (a ready )?tiller.*|cannot connect to Tiller.*|"
    r"server is too old to know its version.*|incompatible versions.*))$",
    re.IGNORECASE,
)


class HelmVersionError(ValueError):
    """The text is not a Helm version output this module understands."""


@dataclass(frozen=True, order=False)
class SemVer:
    major: int
    minor: int
    patch: int
    prerelease: str = ""
    build: str = ""

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += f"-{self.prerelease}"
        return text

    def _prerelease_key(self) -> tuple:
        # SemVer 2.0 section 11: a release sorts after its pre-releases;
        # numeric identifiers sort numerically and before alphanumeric ones.
        if not self.prerelease:
            return (1,)
        parts = []
        for ident in self.prerelease.split("."):
            parts.append((0, int(ident), "") if ident.isdigit() else (1, 0, ident))
        return (0, tuple(parts))

    def sort_key(self) -> tuple:
        return (self.major, self.minor, self.patch, self._prerelease_key())

    def __lt__(self, other: SemVer) -> bool:
        return self.sort_key() < other.sort_key()

    def __le__(self, other: SemVer) -> bool:
        return self.sort_key() <= other.sort_key()


def parse_semver(text: str) -> SemVer:
    """Parse "v3.22.0", "3.22.0", "v2.16.1+gbbdfe5e" or "v4.0.0-rc.1"."""
    match = _SEMVER_RE.match(text.strip())
    if not match:
        raise HelmVersionError(f"{text!r} is not a semantic version such as 3.22.0")
    return SemVer(
        major=int(match["major"]),
        minor=int(match["minor"]),
        patch=int(match["patch"]),
        prerelease=match["pre"] or "",
        build=match["build"] or "",
    )


@dataclass
class HelmVersionInfo:
    """What ``helm version`` told us."""

    client: SemVer
    output_format: str  # "helm2", "helm2-short", "buildinfo", "short" or "template"
    kube_client_version: str = ""  # Helm 4 only
    server: SemVer | None = None  # Helm 2 only: the Tiller that answered
    tiller_error: str = ""  # Helm 2 only: why no Server line was printed

    @property
    def client_major(self) -> int:
        return self.client.major


def _parse_go_struct(fields_text: str) -> dict:
    return dict(_GO_FIELD_RE.findall(fields_text))


def _parse_helm2_side(rest: str) -> tuple[SemVer, str]:
    """One side of Helm 2's output: the %#v struct or the --short form."""
    struct = _HELM2_STRUCT_RE.match(rest.strip())
    if struct:
        fields = _parse_go_struct(struct["fields"])
        if "SemVer" not in fields:
            raise HelmVersionError(f"no SemVer field in {rest!r}")
        return parse_semver(fields["SemVer"]), "helm2"
    return parse_semver(rest), "helm2-short"


def _parse_helm2(lines: list[str], error_lines: list[str]) -> HelmVersionInfo | None:
    sides = {}
    for line in lines:
        match = _HELM2_LINE_RE.match(line)
        if match:
            sides[match["side"]] = _parse_helm2_side(match["rest"])
    if "Client" not in sides:
        return None
    client, output_format = sides["Client"]
    server = sides["Server"][0] if "Server" in sides else None
    tiller_error = ""
    for line in error_lines:
        match = _TILLER_ERROR_RE.match(line)
        if match:
            tiller_error = match["msg"]
            break
    return HelmVersionInfo(
        client=client, output_format=output_format, server=server, tiller_error=tiller_error
    )


def _parse_buildinfo(line: str) -> HelmVersionInfo | None:
    match = _BUILDINFO_RE.match(line)
    if not match:
        return None
    fields = _parse_go_struct(match["fields"])
    if "Version" not in fields:
        raise HelmVersionError(f"no Version field in {line!r}")
    return HelmVersionInfo(
        client=parse_semver(fields["Version"]),
        output_format="buildinfo",
        kube_client_version=fields.get("KubeClientVersion", ""),
    )


def parse_helm_version(stdout: str, stderr: str = "") -> HelmVersionInfo:
    """Parse ``helm version`` output of Helm 2, 3 or 4, in any of its forms.

    Raises HelmVersionError, quoting the output, when nothing fits.
    """
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    error_lines = [line.strip() for line in (stderr + "\n" + stdout).splitlines() if line.strip()]

    info = _parse_helm2(lines, error_lines)
    if info:
        return info
    for line in lines:
        info = _parse_buildinfo(line)
        if info:
            return info
    if len(lines) == 1 and _SEMVER_RE.match(lines[0]):
        return HelmVersionInfo(client=parse_semver(lines[0]), output_format="short")
    # A --template output: accept it when it names exactly one version.
    tokens = sorted({token for line in lines for token in _VERSION_TOKEN_RE.findall(line)})
    if len(tokens) == 1:
        return HelmVersionInfo(client=parse_semver(tokens[0]), output_format="template")
    raise HelmVersionError(
        "could not find the Helm client version in the output of 'helm version' "
        f"(stdout: {stdout.strip()!r}, stderr: {stderr.strip()!r})"
    )


def image_tag_version(image: str) -> SemVer | None:
    """The version in a container image tag, e.g. ghcr.io/helm/tiller:v2.17.0.

    Returns None for an untagged, digest-only or non-version tag (e.g. "canary").
    """
    name = image.split("@", 1)[0]
    last_part = name.rsplit("/", 1)[-1]
    if ":" not in last_part:
        return None
    tag = last_part.rsplit(":", 1)[1]
    try:
        return parse_semver(tag)
    except HelmVersionError:
        return None
