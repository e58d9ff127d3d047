# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""helm_release_info in-process on a local connection (plugins/plugin_utils/in_process.py).

Documented in library/. It runs helm only: the kubernetes library is not needed.
"""

from __future__ import annotations

from ansible_collections.dask_gke.core.plugins.plugin_utils.in_process import in_process_action

ActionModule = in_process_action(
    "helm_release_info", needs_kubernetes=False, requirement="the dask_gke.core collection"
)
