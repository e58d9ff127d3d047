# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lookup returning the version of the dask_gke.core collection."""

from __future__ import annotations

DOCUMENTATION = r"""
name: collection_version
short_description: Version of the dask_gke.core collection these roles come from
description:
  - Returns the one version number of dask-gke, the C(version) of the collection's
    C(galaxy.yml).
  - In an installed collection it is read from C(MANIFEST.json) (which
    C(ansible-galaxy collection build) writes from C(galaxy.yml)); in a checkout
    of the repository, from C(galaxy.yml) itself.
  - Takes no terms.
version_added: "1.0.0"
author:
  - dask-gke contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Show the dask-gke version
  ansible.builtin.debug:
    msg: "dask-gke {{ lookup('dask_gke.core.collection_version') }}"
"""

RETURN = r"""
_raw:
  description: The collection version, such as C(1.0.0).
  type: list
  elements: str
"""

import json
from pathlib import Path

import yaml
from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

NAMESPACE = "dask_gke"
NAME = "core"


def _version_in(directory: Path) -> str | None:
    """The version recorded in directory when it is the root of dask_gke.core, else None."""
    manifest = directory / "MANIFEST.json"
    if manifest.is_file():
        info = json.loads(manifest.read_text())["collection_info"]
    elif (directory / "galaxy.yml").is_file():
        info = yaml.safe_load((directory / "galaxy.yml").read_text())
    else:
        return None
    if (info.get("namespace"), info.get("name")) != (NAMESPACE, NAME):
        return None
    return str(info["version"])


def collection_version(start: Path) -> str:
    """The version of the dask_gke.core collection that holds start (a file in it)."""
    for directory in start.parents:
        version = _version_in(directory)
        if version:
            return version
    raise AnsibleLookupError(
        f"no MANIFEST.json or galaxy.yml of {NAMESPACE}.{NAME} above {start}; "
        "install the collection with ansible-galaxy or run from a checkout of dask-gke"
    )


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError(f"collection_version takes no terms, got {terms!r}")
        # Not resolved: in the repository the collections/ tree links this file, and
        # the path through the link leads to the tree's galaxy.yml.
        return [collection_version(Path(__file__).absolute())]
