#!/bin/bash
# Entrypoint of the dask-gke sandbox's ghcr.io/dask/dask image (under tini -g):
# install what EXTRA_*_PACKAGES ask for, then run the command.
set -e -o pipefail

# shellcheck source=sandbox/images/files/install-extra-packages.sh
. /usr/local/lib/dask-gke/install-extra-packages.sh

exec "$@"
