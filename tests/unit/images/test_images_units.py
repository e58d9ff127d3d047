"""Unit tests of the image builder: versions, cache keys and lock, rendering, commands."""

import configparser
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from sandbox import images
from sandbox.images import build, cache, config, oci, rootfs, wheels
from sandbox.images.run import ImageError, run
from sandbox.pypi import INDEX_HOST, INDEX_PORT, index_url

FILES = config.FILES_DIR
BASH = shutil.which("bash") or "/bin/bash"
UTC = datetime.UTC


# ---- versions --------------------------------------------------------------


def test_default_version_comes_from_the_role_defaults():
    version = config.default_dask_version()
    text = config.CHART_DEFAULTS.read_text()
    assert f"dask_chart_dask_version: {version}\n" in text
    assert build.check_version(version) == version


def test_default_version_follows_the_defaults_file(tmp_path):
    defaults = tmp_path / "main.yml"
    defaults.write_text("---\ndask_chart_release: dask\ndask_chart_dask_version: 2026.8.0\n")
    assert config.default_dask_version(defaults) == "2026.8.0"
    defaults.write_text("---\ndask_chart_release: dask\n")
    with pytest.raises(ValueError, match="has no dask_chart_dask_version"):
        config.default_dask_version(defaults)


@pytest.mark.parametrize("bad", ["latest", "2026", "2026.8.0; rm -rf /", "../2026.8.0", ""])
def test_bad_versions_are_refused_before_any_work(bad):
    with pytest.raises(ImageError, match="is not a release number"):
        build.check_version(bad)


def test_sandbox_versions_add_the_variable_once_each(monkeypatch):
    default = config.default_dask_version()
    monkeypatch.setenv("DASK_GKE_SANDBOX_DASK_VERSIONS", f" 2026.8.0, {default},,2026.8.0")
    assert images.sandbox_dask_versions() == [default, "2026.8.0"]
    monkeypatch.delenv("DASK_GKE_SANDBOX_DASK_VERSIONS")
    assert images.sandbox_dask_versions() == [default]


# ---- wheel resolution rules ------------------------------------------------


def test_cutoff_is_the_day_after_the_release_but_not_before_the_python_has_wheels():
    new = datetime.datetime(2026, 8, 24, 19, 35, tzinfo=UTC)
    assert wheels.cutoff_for(new, "3.13") == new + datetime.timedelta(days=1)
    old = datetime.datetime(2024, 1, 12, 21, 50, tzinfo=UTC)
    assert wheels.cutoff_for(old, "3.13") == wheels.PYTHON_WHEELS_SINCE["3.13"]
    assert wheels.cutoff_for(old, "3.99") == old + datetime.timedelta(days=1)


def test_platform_tags_stop_at_the_rootfs_glibc():
    tags = wheels.platform_tags((2, 41))
    assert tags[0] == "manylinux_2_41_x86_64"
    assert "manylinux_2_17_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux_2_42_x86_64" not in tags


def test_base_requirements_pin_dask_and_distributed():
    assert wheels.base_requirements("2026.8.0")[:2] == [
        "dask[complete]==2026.8.0",
        "distributed==2026.8.0",
    ]


def test_upload_time_is_cached_and_never_asked_twice(tmp_path, monkeypatch):
    calls = []

    class Reply:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            releases = {"2026.8.0": [{"upload_time_iso_8601": "2026-08-24T19:21:25.906788Z"}]}
            return json.dumps({"releases": releases}).encode()

    def urlopen(url, **kwargs):
        calls.append(url)
        return Reply()

    monkeypatch.setattr(wheels.urllib.request, "urlopen", urlopen)
    first = wheels.upload_time("dask", "2026.8.0", tmp_path)
    assert wheels.upload_time("dask", "2026.8.0", tmp_path) == first
    assert first == datetime.datetime(2026, 8, 24, 19, 21, 25, 906788, tzinfo=UTC)
    assert calls == ["https://pypi.org/pypi/dask/json"]
    with pytest.raises(ImageError, match=r"dask 1999\.1\.0 is not on PyPI"):
        wheels.upload_time("dask", "1999.1.0", tmp_path)


def test_wheel_set_round_trips_and_pins_every_version():
    wheel_set = wheels.WheelSet(
        "2026.8.0",
        "2026-08-25T19:35:58Z",
        (wheels.Wheel("dask", "2026.8.0", "dask-2026.8.0-py3-none-any.whl", "ab" * 32),),
    )
    assert wheels.WheelSet.from_json(wheel_set.to_json()) == wheel_set
    assert wheel_set.constraints() == "dask==2026.8.0\n"


# ---- cache keys, warm path, lock ------------------------------------------


def test_archive_key_changes_with_every_input(monkeypatch):
    base = build.dask_archives("2026.8.0", "wheels A")
    assert build.dask_archives("2026.8.0", "wheels A") == base
    assert build.dask_archives("2026.8.0", "wheels B")[0].path != base[0].path
    assert build.dask_archives("2026.7.1", "wheels A")[0].path != base[0].path
    monkeypatch.setattr(build, "DEBIAN_SUITE", "forky")
    assert build.dask_archives("2026.8.0", "wheels A")[0].path != base[0].path


def test_sources_digest_covers_paths_and_contents(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "REPO_ROOT", tmp_path)
    one = tmp_path / "a.sh"
    one.write_text("echo 1\n")
    first = cache.sources_digest([one])
    one.write_text("echo 2\n")
    assert cache.sources_digest([one]) != first
    renamed = tmp_path / "b.sh"
    one.rename(renamed)
    renamed.write_text("echo 1\n")
    assert cache.sources_digest([renamed]) != first


def test_builder_sources_include_the_index_url_owner():
    names = {p.name for p in cache.source_files()}
    assert {"build.py", "prepare.sh", "main.go", "pip.conf.in"} <= names
    assert cache.EXTRA_SOURCES[0] in cache.source_files()
    assert not any("__pycache__" in p.parts for p in cache.source_files())


def test_warm_call_returns_cached_archives_without_building(tmp_path, monkeypatch):
    monkeypatch.setenv("DASK_GKE_CACHE", str(tmp_path))
    version = "2026.8.0"
    resolution = build._resolution_file(version)
    resolution.parent.mkdir(parents=True)
    resolution.write_text("resolved wheels\n")
    expected = build.dask_archives(version, resolution.read_text())
    for archive in expected:
        archive.path.parent.mkdir(parents=True, exist_ok=True)
        archive.path.write_bytes(b"archive")

    def no_build(version):
        raise AssertionError("a warm call must not build")

    monkeypatch.setattr(build, "_build_dask", no_build)
    start = time.monotonic()
    archives = images.ensure_images(version)
    assert time.monotonic() - start < 1.0
    assert archives == expected
    assert [a.refs for a in archives] == [
        (f"ghcr.io/dask/dask:{version}", f"ghcr.io/dask/dask:{version}-py3.13"),
        (f"ghcr.io/dask/dask-notebook:{version}", f"ghcr.io/dask/dask-notebook:{version}-py3.13"),
    ]


def test_cold_call_builds_under_the_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("DASK_GKE_CACHE", str(tmp_path))
    built = []

    def fake_build(version):
        assert "pid" in (tmp_path / "images" / "build.lock").read_text()
        built.append(version)
        return ["built"]

    monkeypatch.setattr(build, "_build_dask", fake_build)
    assert images.ensure_images("2026.8.0") == ["built"]
    assert built == ["2026.8.0"]


def test_a_second_builder_waits_for_the_lock_and_gives_up_naming_it(tmp_path):
    lock = tmp_path / "build.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from sandbox.images.cache import build_lock\n"
            f"with build_lock(Path({str(lock)!r})):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=config.REPO_ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with (
            pytest.raises(ImageError, match=r"gave up after 1 s waiting for the image build lock"),
            cache.build_lock(lock, timeout=1.0),
        ):
            pass
        assert time.monotonic() - start >= 1.0
    finally:
        holder.kill()
        holder.wait(timeout=10)
    with cache.build_lock(lock, timeout=1.0):  # released by the holder's death
        assert f"pid {os.getpid()}" in lock.read_text()


# ---- rendering -------------------------------------------------------------


def test_pip_conf_points_at_the_sandbox_index_by_name():
    parser = configparser.ConfigParser()
    parser.read_string(rootfs.render_pip_conf())
    assert parser["global"]["index-url"] == index_url()
    assert index_url() == f"http://{INDEX_HOST}:{INDEX_PORT}/root/pypi/+simple/"
    assert parser["global"]["trusted-host"] == INDEX_HOST


def hook(env: dict[str, str]) -> subprocess.CompletedProcess:
    """The images' install-extra-packages hook, sourced by bash as the entrypoints do."""
    script = f". {FILES / 'install-extra-packages.sh'}; echo COMMAND-RAN"
    return subprocess.run(
        [BASH, "-c", script],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_hook_without_variables_runs_the_command():
    result = hook({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["no environment.yml", "COMMAND-RAN"]


@pytest.mark.parametrize(
    ("variable", "route"),
    [("EXTRA_CONDA_PACKAGES", "a conda channel"), ("EXTRA_APT_PACKAGES", "a Debian mirror")],
)
def test_hook_refuses_what_pods_cannot_install(variable, route):
    result = hook({variable: "numba llvmlite", "EXTRA_PIP_PACKAGES": "six"})
    assert result.returncode == 1
    assert "COMMAND-RAN" not in result.stdout
    assert f'{variable}="numba llvmlite" is not supported here' in result.stderr
    assert f"no route to {route}" in result.stderr


def test_run_sh_word_splits_jupyterlab_args_as_upstream(tmp_path):
    fake = tmp_path / "jupyter"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "JUPYTERLAB_ARGS": "--config /x/c.py"}
    result = subprocess.run(
        [BASH, str(FILES / "run.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.stdout.splitlines() == [
        "lab",
        "--NotebookApp.base_url=/",
        "--NotebookApp.allow_origin=*",
        "--config",
        "/x/c.py",
    ]


def test_jupyter_configs_listen_on_every_interface():
    for name, app in (
        ("jupyter_server_config.py", "ServerApp"),
        ("jupyter_notebook_config.py", "NotebookApp"),
    ):
        text = (FILES / name).read_text()
        assert f'c.{app}.ip = "0.0.0.0"' in text
        assert f"c.{app}.open_browser = False" in text


def test_image_configs_match_upstream_entrypoints():
    base, notebook = build.base_config("2026.8.0"), build.notebook_config("2026.8.0")
    assert base.entrypoint == ("tini", "-g", "--", "/usr/bin/prepare.sh")
    assert base.cmd == ()
    assert notebook.entrypoint == ("tini", "-g", "--", "start.sh")
    assert (notebook.cmd, notebook.user, notebook.workdir) == (
        ("/run.sh",),
        "jovyan",
        "/home/jovyan",
    )
    assert "DASK_VERSION=2026.8.0" in base.env and "NB_UID=1000" in notebook.env
    assert base.env[0].startswith("PATH=/opt/conda/bin:")


# ---- archives --------------------------------------------------------------


def blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def test_archive_carries_every_reference_and_only_its_image(tmp_path):
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    manifests = []
    for tag in ("dask", "other"):
        config_blob = blob(layout, f"config {tag}".encode())
        layer = blob(layout, f"layer {tag}".encode())
        manifest = {"schemaVersion": 2, "config": config_blob, "layers": [layer]}
        descriptor = blob(layout, json.dumps(manifest).encode())
        descriptor["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
        descriptor["annotations"] = {oci.OCI_REF_NAME: tag}
        manifests.append(descriptor)
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))
    refs = ("ghcr.io/dask/dask:2026.8.0", "ghcr.io/dask/dask:2026.8.0-py3.13")
    archive = tmp_path / "dask.oci.tar"
    oci.write_archive(layout, "dask", refs, archive)
    assert oci.archive_refs(archive) == list(refs)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        index = json.load(tar.extractfile("index.json"))
    assert len([n for n in names if n.startswith("blobs/")]) == 3  # manifest, config, layer
    assert {m["annotations"][oci.OCI_REF_NAME] for m in index["manifests"]} == {
        "2026.8.0",
        "2026.8.0-py3.13",
    }
    with pytest.raises(ImageError, match="0 manifests tagged missing"):
        oci.write_archive(layout, "missing", refs, tmp_path / "x.tar")


# ---- commands --------------------------------------------------------------


def test_a_command_past_its_bound_names_what_it_waited_for():
    start = time.monotonic()
    with pytest.raises(
        ImageError, match=r"mmdebstrap trixie: gave up after 0.3 s waiting for sleep 30"
    ):
        run(["sleep", "30"], "mmdebstrap trixie", 0.3)
    assert time.monotonic() - start < 5


def test_a_failed_command_reports_its_exit_code_and_output():
    with pytest.raises(ImageError, match=r"(?s)packing: sh -c .* exit code 3:\nno space"):
        run(["sh", "-c", "echo no space >&2; exit 3"], "packing", 10)
    with pytest.raises(ImageError, match="cannot run /nonexistent"):
        run(["/nonexistent"], "anything", 10)
