# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module of ours that runs in-process shares in its documentation."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
requirements:
  - python >= 3.11
attributes:
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
notes:
  - Runs on the controller in-process (its action plugin, no module start-up) when the
    task's connection is local; otherwise, for example with C(delegate_to) a remote host,
    as a module on the target.
"""
