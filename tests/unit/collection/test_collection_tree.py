"""The collection dask_gke.core as the repository exposes it and as `make collection` builds it."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleLookupError
from ansible_collections.dask_gke.core.plugins.lookup.collection_version import collection_version

from tools.build_collection import REPO_ROOT, TREE, BuildError, build, dangling_links, stage

GALAXY = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())


def plugin_sources():
    """Every plugin file the collection must carry, by its place in the collection."""
    sources = {f"plugins/modules/{p.name}": p for p in (REPO_ROOT / "library").glob("*.py")}
    sources.update(
        {f"plugins/module_utils/{p.name}": p for p in (REPO_ROOT / "module_utils").glob("*.py")}
    )
    for kind, directory in (("filter", "filter_plugins"), ("lookup", "lookup_plugins")):
        for path in REPO_ROOT.glob(f"roles/*/{directory}/*.py"):
            sources[f"plugins/{kind}/{path.name}"] = path
    for path in (REPO_ROOT / "plugins").glob("*/*.py"):
        sources[f"plugins/{path.parent.name}/{path.name}"] = path
    return sources


def test_the_tree_has_no_dangling_link():
    assert dangling_links() == []


@pytest.mark.parametrize(("place", "source"), sorted(plugin_sources().items()))
def test_every_plugin_of_the_repository_is_in_the_tree(place, source):
    linked = TREE / place
    assert linked.exists(), f"{place} missing in {TREE}: link it to {source}"
    assert linked.resolve() == source.resolve()


def test_the_tree_links_the_roles_meta_and_changelog():
    for name in ("galaxy.yml", "meta", "roles", "changelogs", "CHANGELOG.md", "LICENSE"):
        assert (TREE / name).resolve() == (REPO_ROOT / name).resolve(), name


def test_galaxy_dependencies_agree_with_requirements_yml():
    requirements = yaml.safe_load((REPO_ROOT / "requirements.yml").read_text())["collections"]
    pinned = {entry["name"]: entry["version"] for entry in requirements}
    assert {name: pinned.get(name) for name in GALAXY["dependencies"]} == GALAXY["dependencies"]


def test_stage_dereferences_every_link(tmp_path):
    staged = stage(tmp_path)
    assert [p for p in staged.rglob("*") if p.is_symlink()] == []
    assert (staged / "plugins/modules/wait_for_lb_ip.py").read_text() == (
        REPO_ROOT / "library/wait_for_lb_ip.py"
    ).read_text()
    assert (staged / "roles/helm_tiller/tasks/main.yml").is_file()
    assert not list(staged.rglob("__pycache__"))
    # The roles' plugins once, under plugins/ (the roles call them by FQCN).
    assert not list(staged.glob("roles/*/*_plugins"))
    assert (staged / "plugins/filter/dask_chart.py").is_file()


def test_stage_refuses_a_dangling_link(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "galaxy.yml").symlink_to(tmp_path / "nowhere.yml")
    with pytest.raises(BuildError, match="point nowhere"):
        stage(tmp_path / "out", tree)


def test_build_makes_a_versioned_tarball_of_plain_files(tmp_path):
    tarball = build(tmp_path)
    assert tarball.name == f"dask_gke-core-{GALAXY['version']}.tar.gz"
    with tarfile.open(tarball) as archive:
        members = {m.name: m for m in archive.getmembers()}
        manifest = json.load(archive.extractfile("MANIFEST.json"))
    assert [name for name, m in members.items() if m.issym() or m.islnk()] == []
    assert manifest["collection_info"]["version"] == GALAXY["version"]
    assert manifest["collection_info"]["dependencies"] == GALAXY["dependencies"]
    expected = {
        "meta/runtime.yml",
        "meta/requirements.txt",
        "CHANGELOG.md",
        "changelogs/changelog.yaml",
        "roles/dask_chart/tasks/main.yml",
        *plugin_sources(),
    }
    assert expected - set(members) == set()
    assert not [name for name in members if "__pycache__" in name or name.endswith(".pyc")]


# ---- the collection_version lookup ---------------------------------------------------------


def test_version_in_the_repository_is_galaxy_yml_s():
    assert collection_version(REPO_ROOT / "plugins/lookup/collection_version.py") == str(
        GALAXY["version"]
    )
    linked = TREE / "plugins/lookup/collection_version.py"
    assert collection_version(linked) == str(GALAXY["version"])


def installed(root: Path, namespace="dask_gke", name="core", version="9.8.7") -> Path:
    collection = root / "ansible_collections" / namespace / name
    (collection / "plugins/lookup").mkdir(parents=True)
    info = {"namespace": namespace, "name": name, "version": version}
    (collection / "MANIFEST.json").write_text(json.dumps({"collection_info": info}))
    return collection / "plugins/lookup/collection_version.py"


def test_version_of_an_installed_collection_comes_from_its_manifest(tmp_path):
    assert collection_version(installed(tmp_path)) == "9.8.7"


def test_version_skips_another_collection_s_metadata(tmp_path):
    plugin = installed(tmp_path / "inner", namespace="other", version="0.1.0")
    (tmp_path / "galaxy.yml").write_text("namespace: dask_gke\nname: core\nversion: 2.0.0\n")
    assert collection_version(plugin) == "2.0.0"


def test_version_without_any_metadata_names_the_fix(tmp_path):
    with pytest.raises(AnsibleLookupError, match="install the collection with ansible-galaxy"):
        collection_version(tmp_path / "a" / "b.py")
