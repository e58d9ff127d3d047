"""What the endpoints file promises, used as a user would: a Dask computation through the
scheduler address, the dashboard, the pip packages in every component, and screenshots.

Shared by the default scenario (Helm 4) and the helm3 scenario. On a machine that cannot
host the sandbox's real node every test here is skipped with that reason, never passed.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest
from kubernetes import client

from tests.integration import harness

TIMEOUT = 60  # seconds for the scheduler to answer and a computation to finish
SCREENSHOTS = harness.RUN_LOG_ROOT / harness.scenario_name() / "screenshots"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


# Real pods only: skipped, with the reason, in a sandbox without a real node.
pytestmark = pytest.mark.usefixtures("real_node")


@pytest.fixture(scope="module")
def endpoints(endpoints_file: Path) -> dict:
    return json.loads(endpoints_file.read_text())


@pytest.fixture(scope="module")
def dask_client(endpoints):
    distributed = pytest.importorskip("distributed")
    with distributed.Client(endpoints["scheduler_address"], timeout=TIMEOUT) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def core(kubeconfig) -> client.CoreV1Api:
    return client.CoreV1Api(harness.kube_client(kubeconfig))


def requirement_name(requirement: str) -> str:
    """'xarray==2025.1.2' -> 'xarray', 's3fs[boto3]>=1' -> 's3fs'."""
    return re.split(r"[\[<>=!~;]", requirement, maxsplit=1)[0].strip()


def test_a_computation_runs_on_every_worker(dask_client, settings):
    replicas = int(settings["dask_chart_worker_replicas"])
    dask_client.wait_for_workers(replicas, timeout=TIMEOUT)
    workers = sorted(dask_client.scheduler_info()["workers"])
    assert len(workers) == replicas
    # One task pinned to each worker: every worker computes, the client adds up.
    futures = [
        dask_client.submit(pow, index, 2, workers=[address], pure=False)
        for index, address in enumerate(workers, start=1)
    ]
    assert sum(dask_client.gather(futures)) == sum(i * i for i in range(1, replicas + 1))
    where = dask_client.who_has(futures)
    assert sorted(address for holders in where.values() for address in holders) == workers


def test_client_scheduler_and_workers_run_one_dask_version(dask_client, settings):
    versions = dask_client.get_versions(check=False)
    expected = str(settings["dask_chart_dask_version"])
    assert installed_version("dask") == expected, "the control node's client"
    assert versions["scheduler"]["packages"]["dask"] == expected
    assert {w["packages"]["dask"] for w in versions["workers"].values()} == {expected}


def test_the_dashboard_answers_through_its_load_balancer(endpoints):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(endpoints["dashboard_url"], timeout=TIMEOUT) as response:
        assert response.status == 200
        assert "<title>Dask Diagnostic UI</title>" in response.read().decode()


def test_extra_pip_packages_are_installed_on_scheduler_and_workers(dask_client, settings):
    requirements = settings["dask_chart_extra_pip_packages"]
    assert requirements, "the scenario must ask for packages"
    workers = sorted(dask_client.scheduler_info()["workers"])
    for requirement in requirements:
        name = requirement_name(requirement)
        # importlib.metadata.version travels by reference (stdlib): it runs there, and
        # raises PackageNotFoundError there when the package is missing.
        on_scheduler = dask_client.run_on_scheduler(installed_version, name)
        on_workers = dask_client.run(installed_version, name)
        assert sorted(on_workers) == workers
        if "==" in requirement:
            wanted = requirement.split("==", 1)[1]
            assert on_scheduler == wanted
            assert set(on_workers.values()) == {wanted}, on_workers


def test_extra_pip_packages_are_installed_in_jupyter(core, namespace, release, settings):
    names = [requirement_name(r) for r in settings["dask_chart_extra_pip_packages"]]
    (pod,) = core.list_namespaced_pod(
        namespace, label_selector=f"release={release},component=jupyter"
    ).items
    code = (
        "import json, importlib.metadata as m\n"
        f"print(json.dumps({{n: m.version(n) for n in {names!r}}}))"
    )
    output = harness.python_in_pod(core, pod.metadata.name, namespace, code)
    assert sorted(json.loads(output.strip().splitlines()[-1])) == sorted(names), output


# Canvases of the dashboard's Bokeh plots, which Bokeh 3 draws inside shadow roots.
COUNT_CANVASES = """
let count = 0;
const walk = (root) => root.querySelectorAll("*").forEach((element) => {
  if (element.tagName === "CANVAS") count += 1;
  if (element.shadowRoot) walk(element.shadowRoot);
});
walk(document);
return count;
"""


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from Debian, driven through chromedriver (selenium)."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium or chromium-driver not installed (make sandbox-system-packages)")
    from selenium import webdriver  # noqa: PLC0415 - only the browser tests need it
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-proxy-server",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(TIMEOUT)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def screenshot(driver, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot {path}"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def test_a_browser_renders_the_dashboard_with_every_worker(
    browser, endpoints, dask_client, settings
):
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    browser.get(endpoints["dashboard_url"])
    WebDriverWait(browser, TIMEOUT).until(lambda driver: driver.execute_script(COUNT_CANVASES) > 0)
    assert browser.title == "Dask: Status"  # set by the dashboard's script once it ran
    browser.get(endpoints["dashboard_url"].replace("/status", "/info/main/workers.html"))
    page = browser.page_source
    for address in dask_client.scheduler_info()["workers"]:
        assert address in page, f"worker {address} missing from the dashboard's worker list"
    browser.get(endpoints["dashboard_url"])
    WebDriverWait(browser, TIMEOUT).until(lambda driver: driver.execute_script(COUNT_CANVASES) > 0)
    screenshot(browser, "dashboard")


def test_a_browser_logs_in_to_jupyter_with_the_role_password(browser, endpoints, jupyter_password):
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support import expected_conditions as ec  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    browser.get(endpoints["jupyter_url"])
    field = WebDriverWait(browser, TIMEOUT).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=password]"))
    )
    assert "/login" in browser.current_url, "Jupyter must ask for the password"
    screenshot(browser, "jupyter-login")
    field.send_keys(jupyter_password)
    field.submit()
    WebDriverWait(browser, TIMEOUT).until(
        ec.presence_of_element_located((By.ID, "jp-main-dock-panel"))
    )
    assert "/lab" in browser.current_url
    screenshot(browser, "jupyterlab")
