"""OCI layouts with umoci, archives that `ctr images import` names, and their import.

An archive is an OCI image layout in a tar: `oci-layout`, `index.json` and the
blobs of one image. Each reference is one entry of `index.json`, annotated
with the full name (`io.containerd.image.name`, what containerd names the
imported image) and the tag (`org.opencontainers.image.ref.name`, the OCI
annotation), as `ctr images export` writes them.
"""

import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.images.run import ImageError, run

UMOCI_TIMEOUT = 600.0
CONTAINERD_NAMESPACE = "k8s.io"  # the namespace the CRI (kubelet) reads images from
CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"
PLATFORM = {"architecture": "amd64", "os": "linux"}


@dataclass(frozen=True)
class ImageConfig:
    """The runtime configuration of an image (what a Dockerfile's ENV, USER, ... set)."""

    env: tuple[str, ...]
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    user: str = "0:0"
    workdir: str = "/"
    ports: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)


def umoci(*args: str, what: str) -> None:
    run(["umoci", *args], what, UMOCI_TIMEOUT)


def new_layout(layout: Path, tag: str) -> None:
    umoci("init", "--layout", str(layout), what=f"creating the OCI layout {layout}")
    umoci("new", "--image", f"{layout}:{tag}", what=f"creating the empty image {tag}")


def unpack(layout: Path, tag: str, bundle: Path) -> Path:
    """Unpack tag into a runtime bundle; its rootfs directory."""
    umoci("unpack", "--image", f"{layout}:{tag}", str(bundle), what=f"unpacking {tag}")
    return bundle / "rootfs"


def repack(layout: Path, tag: str, bundle: Path) -> None:
    """A new layer with the bundle's changes, as image `tag`; the bundle then matches it."""
    umoci(
        "repack",
        "--refresh-bundle",
        "--image",
        f"{layout}:{tag}",
        str(bundle),
        what=f"packing the layer of {tag}",
    )


def configure(layout: Path, tag: str, config: ImageConfig) -> None:
    argv = ["config", "--image", f"{layout}:{tag}", "--os", "linux", "--architecture", "amd64"]
    for cleared in ("config.env", "config.entrypoint", "config.cmd", "config.exposedports"):
        argv.append(f"--clear={cleared}")
    argv += ["--config.user", config.user, "--config.workingdir", config.workdir]
    for variable in config.env:
        argv += ["--config.env", variable]
    for word in config.entrypoint:
        argv += ["--config.entrypoint", word]
    for word in config.cmd:
        argv += ["--config.cmd", word]
    for port in config.ports:
        argv += ["--config.exposedports", port]
    for name, value in sorted(config.labels.items()):
        argv += ["--config.label", f"{name}={value}"]
    umoci(*argv, what=f"configuring {tag}")


def _blob(layout: Path, digest: str) -> Path:
    algorithm, hex_digest = digest.split(":", 1)
    return layout / "blobs" / algorithm / hex_digest


def write_archive(layout: Path, tag: str, refs: tuple[str, ...], archive: Path) -> None:
    """An archive of image `tag` of the layout, importable under every name in refs."""
    index = json.loads((layout / "index.json").read_text())
    descriptors = [
        d for d in index["manifests"] if d.get("annotations", {}).get(OCI_REF_NAME) == tag
    ]
    if len(descriptors) != 1:
        raise ImageError(f"{layout} has {len(descriptors)} manifests tagged {tag}, expected 1")
    manifest_descriptor = descriptors[0]
    manifest = json.loads(_blob(layout, manifest_descriptor["digest"]).read_text())
    digests = [manifest_descriptor["digest"], manifest["config"]["digest"]]
    digests += [layer["digest"] for layer in manifest["layers"]]
    entries = []
    for ref in refs:
        entry = {key: manifest_descriptor[key] for key in ("mediaType", "digest", "size")}
        entry["platform"] = PLATFORM
        entry["annotations"] = {CONTAINERD_NAME: ref, OCI_REF_NAME: ref.rsplit(":", 1)[1]}
        entries.append(entry)
    new_index = {"schemaVersion": 2, "manifests": entries}
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w") as tar:
        _add_bytes(tar, "oci-layout", (layout / "oci-layout").read_bytes())
        _add_bytes(tar, "index.json", json.dumps(new_index, indent=1).encode())
        for digest in dict.fromkeys(digests):
            algorithm, hex_digest = digest.split(":", 1)
            tar.add(_blob(layout, digest), arcname=f"blobs/{algorithm}/{hex_digest}", filter=_plain)


def _plain(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    member.mtime = 0
    return member


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io  # noqa: PLC0415 (two small in-memory members per archive)

    member = _plain(tarfile.TarInfo(name))
    member.size = len(data)
    member.mode = 0o644
    tar.addfile(member, io.BytesIO(data))


def archive_refs(archive: Path) -> list[str]:
    """The image names an archive carries (what containerd will call them)."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise ImageError(f"{archive} has no index.json")
        index = json.load(member)
    return [d.get("annotations", {}).get(CONTAINERD_NAME, "") for d in index["manifests"]]


def listed_images(ctr_binary: Path, address: Path, timeout: float) -> set[str]:
    argv = [str(ctr_binary), "-a", str(address), "-n", CONTAINERD_NAMESPACE, "images", "ls", "-q"]
    return set(run(argv, f"listing the images of {address}", timeout).split())


def import_archive(ctr_binary: Path, address: Path, archive: Path, refs, timeout: float) -> None:
    """Import one archive into containerd's k8s.io namespace and check its names are listed."""
    argv = [
        str(ctr_binary),
        "-a",
        str(address),
        "-n",
        CONTAINERD_NAMESPACE,
        "images",
        "import",
        str(archive),
    ]
    try:
        run(argv, f"importing {refs[0]} from {archive}", timeout)
    except ImageError as error:
        raise ImageError(f"image {refs[0]}: {error}") from error
    missing = [ref for ref in refs if ref not in listed_images(ctr_binary, address, timeout)]
    if missing:
        raise ImageError(
            f"image {refs[0]}: imported {archive} into {address}, but containerd does not "
            f"list {', '.join(missing)}"
        )
