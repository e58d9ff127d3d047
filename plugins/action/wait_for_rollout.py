# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""wait_for_rollout in-process on a local connection: plugins/plugin_utils/in_process.py."""

from __future__ import annotations

from ansible_collections.dask_gke.core.plugins.plugin_utils.in_process import in_process_action

ActionModule = in_process_action("wait_for_rollout")
