"""Ask a Dask scheduler which Dask versions it and its workers run, and with
--compute also run a small computation on the workers.

One script for both places the role asks: in the scheduler's own container
(kubernetes.core.k8s_exec, `python -c`, which reaches every worker whatever the
exposure) and on the control node (the smoke test, through the scheduler's
LoadBalancer). Prints one JSON object on stdout:
{"scheduler": "<dask version>", "workers": {"<address>": "<dask version>"},
 "computed": <sum(range(101)) or null>}; exits non-zero with the reason on stderr.
Comparing the versions with the configured one is the role's task, not this
script's: one check, one message.
"""

from __future__ import annotations

import argparse
import json
import sys

try:
    from distributed import Client

    MISSING = ""
except ImportError as error:  # reported by main(): a missing package is an answer
    Client = None
    MISSING = str(error)

# The computation sent to the workers with --compute.
EXPECTED_SUM = sum(range(101))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scheduler", help="tcp://host:port of the scheduler")
    parser.add_argument("workers", type=int, help="number of workers to wait for")
    parser.add_argument("timeout", type=float, help="seconds to connect, wait and compute")
    parser.add_argument("--compute", action="store_true", help="also run sum(range(101))")
    return parser.parse_args(argv)


def ask(args: argparse.Namespace) -> dict:
    with Client(args.scheduler, timeout=args.timeout) as client:
        client.wait_for_workers(args.workers, timeout=args.timeout)
        computed = (
            client.submit(sum, range(101)).result(timeout=args.timeout) if args.compute else None
        )
        versions = client.get_versions(check=False)
    if args.compute and computed != EXPECTED_SUM:
        raise ValueError(f"sum(range(101)) returned {computed}, expected {EXPECTED_SUM}")
    return {
        "scheduler": versions["scheduler"]["packages"]["dask"],
        "workers": {
            address: info["packages"]["dask"] for address, info in versions["workers"].items()
        },
        "computed": computed,
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if Client is None:
        print(f"{MISSING}: no distributed here (pip install distributed)", file=sys.stderr)
        return 1
    try:
        answer = ask(args)
    except Exception as error:  # any failure is the answer
        print(f"{args.scheduler}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
