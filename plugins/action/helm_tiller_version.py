# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""helm_tiller_version in-process on a local connection (plugins/plugin_utils/in_process.py).

Documented in library/. Only tiller=present/absent needs the kubernetes library: the
module's logic reports it missing then, as the module does.
"""

from __future__ import annotations

from ansible_collections.dask_gke.core.plugins.plugin_utils.in_process import in_process_action

ActionModule = in_process_action(
    "helm_tiller_version", needs_kubernetes=False, requirement="the kubernetes.core collection"
)
