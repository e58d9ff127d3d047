"""The answer of a Kubernetes list call, for the fake API servers of the waiting modules' tests."""

from __future__ import annotations


def object_list(kind, rv, *items, api_version="v1"):
    """A `kind` (e.g. "ServiceList") of `items` at resource version `rv`, as the API sends it."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"resourceVersion": str(rv)},
        "items": list(items),
    }
