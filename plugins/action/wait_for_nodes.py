# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""wait_for_nodes on the controller: the module's logic in-process for a local connection.

Its documentation is plugins/modules/wait_for_nodes.py (library/ in the repository);
how and when it runs in-process: plugins/plugin_utils/in_process.py.
"""

from __future__ import annotations

from ansible_collections.dask_gke.core.plugins.plugin_utils.in_process import (
    InProcessModuleAction,
)

try:
    # Paid once by the parent ansible-playbook process, which loads this plugin;
    # every forked worker inherits it instead of a module run importing it again.
    # Imported for that side effect only (ruff F401, pylint unused-import).
    import kubernetes.client  # noqa: F401  # pylint: disable=unused-import

    # The module itself (with its waiters) and kubernetes.core's client module_utils,
    # the latter imported for the same side effect.
    from ansible_collections.dask_gke.core.plugins.modules import wait_for_nodes
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s import (
        client as _k8s_client,  # noqa: F401  # pylint: disable=unused-import
    )
except ImportError as error:  # reported when the task would run in-process
    IMPORT_ERROR: ImportError | None = error
    wait_for_nodes = None
else:
    IMPORT_ERROR = None


class ActionModule(InProcessModuleAction):
    module = wait_for_nodes
    import_error = IMPORT_ERROR
