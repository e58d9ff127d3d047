"""Smoke test of a Dask cluster: connect, compute, compare versions.

Exit status 0 with a one-line summary on success, 1 with the reason otherwise.
"""

from __future__ import annotations

import argparse
import sys

# The computation sent to the workers: sum(range(101)).
EXPECTED_SUM = sum(range(101))

try:
    from distributed import Client
except ImportError:  # reported with the fix in main()
    Client = None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scheduler", required=True, help="tcp://host:port of the scheduler")
    parser.add_argument("--expect-version", required=True, help="Dask version of the cluster")
    parser.add_argument("--timeout", type=int, default=60, help="seconds to connect and compute")
    args = parser.parse_args()
    if Client is None:
        print(
            f"the smoke test needs distributed=={args.expect_version} next to Ansible "
            f"(pip install 'distributed=={args.expect_version}')",
            file=sys.stderr,
        )
        return 1
    try:
        with Client(args.scheduler, timeout=args.timeout) as client:
            total = client.submit(sum, range(101)).result(timeout=args.timeout)
            versions = client.get_versions(check=False)
    except Exception as error:  # any failure is the test's answer
        print(f"cannot compute on {args.scheduler}: {error}", file=sys.stderr)
        return 1
    if total != EXPECTED_SUM:
        print(f"sum(range(101)) returned {total}, expected {EXPECTED_SUM}", file=sys.stderr)
        return 1
    scheduler_version = versions["scheduler"]["packages"].get("dask")
    worker_versions = {w["packages"].get("dask") for w in versions["workers"].values()}
    mismatched = {scheduler_version, *worker_versions} - {args.expect_version}
    if mismatched:
        print(
            f"version mismatch: expected dask {args.expect_version}, "
            f"scheduler {scheduler_version}, workers {sorted(map(str, worker_versions))}",
            file=sys.stderr,
        )
        return 1
    print(
        f"ok: sum computed on {len(versions['workers'])} worker(s), "
        f"dask {args.expect_version} everywhere"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
