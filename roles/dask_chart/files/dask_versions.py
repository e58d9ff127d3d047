"""Run in the scheduler's container: the Dask versions of the scheduler and of
its workers, as JSON on stdout, once the expected number of workers joined.

argv: scheduler address, expected worker count, timeout in seconds.
"""

import json
import sys

from distributed import Client

address, workers, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    with Client(address, timeout=timeout) as client:
        client.wait_for_workers(workers, timeout=timeout)
        versions = client.get_versions(check=False)
except Exception as error:  # the message is the answer
    sys.exit(f"{type(error).__name__}: {error}")
print(
    json.dumps(
        {
            "scheduler": versions["scheduler"]["packages"]["dask"],
            "workers": {
                name: info["packages"]["dask"] for name, info in versions["workers"].items()
            },
        }
    )
)
