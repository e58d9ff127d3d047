# Copyright: dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helm post-renderer of the dask_chart role.

Helm hands it the rendered manifests of the published dask/dask chart on stdin
and installs what it prints. It finishes what the chart cannot express, so
that Helm owns every field of every object from the first revision on:

- exposure: each Service the role names gets exactly the type, source ranges,
  annotations, loadBalancerClass and loadBalancerIP the role chose, and no
  Service leaves here as a LoadBalancer without source ranges, or as a
  NodePort, whatever the chart values said;
- commands: `dask-scheduler` / `dask-worker` (console scripts distributed
  removed in 2026.6.0) become `dask scheduler` / `dask worker` when the role
  asks for it;
- Jupyter: the chart's config file is also written under the name
  jupyter_server 2 reads (dask/helm-chart#512);
- validation: every object is sent to the API server as a dry run (dryRun=All,
  strict field validation), so a release the API server would reject fails
  here, before Helm writes anything or records a revision.

Its settings come as JSON in DASK_CHART_POST_RENDER (see `Settings`). Helm 4
does not show a plugin's stderr, so a failure is also written to the report
file the role names, which the role reads to say why Helm failed.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
from dataclasses import dataclass, field

import yaml

SETTINGS_ENV = "DASK_CHART_POST_RENDER"
# Service fields the exposure settings own: set when given, removed otherwise.
EXPOSURE_FIELDS = ("loadBalancerSourceRanges", "loadBalancerClass", "loadBalancerIP")
REQUEST_TIMEOUT = 30  # seconds per API request of the dry run
# Where a namespace that does not exist yet is validated (a dry run cannot
# create the namespace the other objects would need).
FALLBACK_NAMESPACE = "default"
NOT_FOUND = 404  # HTTP status of an object that does not exist (yet)


class RenderError(Exception):
    """Ends the post-render with a message for the person running Ansible."""


@dataclass
class Settings:
    """What the role asks for (DASK_CHART_POST_RENDER)."""

    # Which post_render.py the role rendered the release with (recorded only)
    revision: str = ""
    # Service name -> {type, loadBalancerSourceRanges, annotations, loadBalancerClass,
    # loadBalancerIP}
    services: dict = field(default_factory=dict)
    # First argument to replace -> its replacement, e.g. "dask-worker" -> ["dask", "worker"]
    commands: dict = field(default_factory=dict)
    # ConfigMap holding the chart's jupyter_notebook_config.py ("" leaves it alone)
    jupyter_config_map: str = ""
    # {"kubeconfig", "context", "namespace"}; empty: no dry run
    dry_run: dict = field(default_factory=dict)
    # File the failure message is written to ("" writes none)
    report: str = ""

    @classmethod
    def from_json(cls, text: str) -> Settings:
        try:
            raw = json.loads(text or "{}")
        except ValueError as exc:
            raise RenderError(f"{SETTINGS_ENV} is not JSON: {exc}") from exc
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise RenderError(f"{SETTINGS_ENV} has unknown keys {unknown}")
        return cls(**raw)


def load_documents(text: str) -> list[dict]:
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc]
    except yaml.YAMLError as exc:
        raise RenderError(f"the chart rendered invalid YAML: {exc}") from exc


class ManifestDumper(yaml.SafeDumper):
    """Writes strings so that no YAML 1.1 reader (Helm's and the API server's
    Go YAML) takes one for anything else: plain only when they start with a
    letter, hold nothing but letters, digits and ._/- and are no boolean or
    null word; multi-line strings (config files) as literal blocks; any other
    double-quoted. PyYAML alone would write "y" or "1e3" unquoted."""


# Words YAML 1.1 reads as booleans or null, compared lowercased.
NOT_PLAIN_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
PLAIN_STRING = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*")


def _represent_str(dumper: yaml.SafeDumper, value: str):
    if "\n" in value:
        style = "|"
    elif PLAIN_STRING.fullmatch(value) and value.lower() not in NOT_PLAIN_WORDS:
        style = None
    else:
        style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


ManifestDumper.add_representer(str, _represent_str)


def dump_documents(documents: list[dict]) -> str:
    return yaml.dump_all(
        documents, Dumper=ManifestDumper, sort_keys=False, default_flow_style=False
    )


def describe(doc: dict) -> str:
    return f"{doc.get('kind')} {(doc.get('metadata') or {}).get('name')}"


# ---- exposure --------------------------------------------------------------------------


def apply_exposure(documents: list[dict], services: dict) -> None:
    """Give each named Service its exposure; refuse any Service left open."""
    for doc in documents:
        if doc.get("kind") != "Service":
            continue
        wanted = services.get(doc["metadata"]["name"])
        if wanted is not None:
            expose(doc, wanted)
        check_exposure(doc)


def expose(service: dict, wanted: dict) -> None:
    spec = service.setdefault("spec", {})
    spec["type"] = wanted["type"]
    for name in EXPOSURE_FIELDS:
        if wanted.get(name):
            spec[name] = copy.deepcopy(wanted[name])
        else:
            spec.pop(name, None)
    metadata = service["metadata"]
    annotations = {**(metadata.get("annotations") or {}), **(wanted.get("annotations") or {})}
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)


def check_exposure(service: dict) -> None:
    spec = service.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    if kind == "NodePort" or (kind == "LoadBalancer" and not spec.get("loadBalancerSourceRanges")):
        raise RenderError(
            f"{describe(service)} would be a {kind} open to every address; the dask_chart role "
            "exposes Services only as LoadBalancers restricted to dask_chart_allowed_source_ranges "
            "(or dask_chart_expose_to_internet=true)"
        )


# ---- commands and Jupyter --------------------------------------------------------------


def rewrite_commands(documents: list[dict], commands: dict) -> None:
    """Replace a container's first argument (or command) by the role's replacement."""
    if not commands:
        return
    for doc in documents:
        if doc.get("kind") != "Deployment":
            continue
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in pod.get("containers") or []:
            for key in ("command", "args"):
                words = container.get(key)
                if words and words[0] in commands:
                    container[key] = list(commands[words[0]]) + list(words[1:])
                    break


def mirror_jupyter_config(documents: list[dict], config_map: str) -> None:
    """Copy the chart's jupyter_notebook_config.py to jupyter_server_config.py.

    jupyter_server 2 reads jupyter_server_config.py from every directory of the
    Jupyter config path, the chart's mount included, so the image's own config
    (e.g. its listening address) still applies while the chart's is added.
    """
    if not config_map:
        return
    for doc in documents:
        if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == config_map:
            data = doc.get("data") or {}
            if "jupyter_notebook_config.py" in data:
                data["jupyter_server_config.py"] = data["jupyter_notebook_config.py"]


# ---- server-side dry run ---------------------------------------------------------------


def dry_run(documents: list[dict], namespace: str, api) -> list[str]:
    """Send every object to the API server as a dry run; return the rejections.

    api: namespace_exists(name) -> bool, and validate(body, namespace) -> None
    or the API server's message.
    """
    target = namespace if api.namespace_exists(namespace) else FALLBACK_NAMESPACE
    rejections = []
    for doc in documents:
        message = api.validate(copy.deepcopy(doc), target)
        if message:
            rejections.append(f"{describe(doc)}: {message}")
    return rejections


class KubernetesApi:
    """The dry run through the kubernetes client: PUT an object that exists, POST one that
    does not, both with dryRun=All and strict field validation."""

    def __init__(self, kubeconfig: str, context: str | None = None):
        from kubernetes import config, dynamic  # noqa: PLC0415 - only the dry run needs them
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        self.api_exception = ApiException
        self.client = dynamic.DynamicClient(
            config.new_client_from_config(config_file=kubeconfig, context=context or None)
        )

    def namespace_exists(self, name: str) -> bool:
        namespaces = self.client.resources.get(api_version="v1", kind="Namespace")
        try:
            namespaces.get(name=name, _request_timeout=REQUEST_TIMEOUT)
        except self.api_exception as exc:
            if exc.status == NOT_FOUND:
                return False
            raise RenderError(f"cannot read namespace {name}: {self.message(exc)}") from exc
        return True

    def validate(self, body: dict, namespace: str) -> str | None:
        try:
            resource = self.client.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        except Exception as exc:  # the discovery's ResourceNotFoundError and transport errors
            return f"the API server does not serve {body['apiVersion']} {body['kind']}: {exc}"
        if resource.namespaced:
            body["metadata"]["namespace"] = namespace

        def options() -> dict:
            # A new list each time: the client appends dryRun to the one it is given.
            return {
                "namespace": namespace if resource.namespaced else None,
                "dry_run": "All",
                "query_params": [("fieldValidation", "Strict")],
                "_request_timeout": REQUEST_TIMEOUT,
            }

        try:
            try:
                resource.replace(body=body, name=body["metadata"]["name"], **options())
            except self.api_exception as exc:
                if exc.status != NOT_FOUND:
                    raise
                resource.create(body=body, **options())
        except self.api_exception as exc:
            return self.message(exc)
        return None

    @staticmethod
    def message(exc) -> str:
        try:
            return json.loads(exc.body or "{}").get("message") or f"HTTP {exc.status} {exc.reason}"
        except (TypeError, ValueError):
            return f"HTTP {exc.status} {exc.reason}: {exc.body}"


# ---- main ------------------------------------------------------------------------------


def render(text: str, settings: Settings, api_factory=KubernetesApi) -> str:
    documents = load_documents(text)
    apply_exposure(documents, settings.services)
    rewrite_commands(documents, settings.commands)
    mirror_jupyter_config(documents, settings.jupyter_config_map)
    if settings.dry_run:
        api = api_factory(settings.dry_run["kubeconfig"], settings.dry_run.get("context"))
        rejections = dry_run(documents, settings.dry_run["namespace"], api)
        if rejections:
            raise RenderError(
                "the API server rejected the release in a dry run, nothing was changed: "
                + "; ".join(rejections)
            )
    return dump_documents(documents)


def write_report(path: str, message: str) -> None:
    if not path:
        return
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as report:
        report.write(message + "\n")


def main() -> int:
    settings = Settings()
    try:
        settings = Settings.from_json(os.environ.get(SETTINGS_ENV, ""))
        if settings.report and os.path.exists(settings.report):
            os.remove(settings.report)  # a report left by an earlier run
        sys.stdout.write(render(sys.stdin.read(), settings))
    except RenderError as exc:
        message = f"dask_chart post-renderer: {exc}"
        print(message, file=sys.stderr)
        write_report(settings.report, message)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
