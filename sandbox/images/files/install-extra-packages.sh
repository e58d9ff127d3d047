# Installs the packages the container's environment asks for, as dask/dask-docker's
# prepare.sh does, in the dask-gke sandbox (sourced by /usr/bin/prepare.sh and by
# the notebook's start.sh as a before-notebook.d hook).
#
# Pods in the sandbox reach only the package index the sandbox runs (see
# /etc/pip.conf), never a Debian or conda mirror: EXTRA_APT_PACKAGES,
# EXTRA_CONDA_PACKAGES and /opt/app/environment.yml therefore fail loudly instead
# of being skipped, so that nothing pretends they were installed.

unsupported() {
    echo "dask-gke sandbox image: $1 is not supported here: pods have no route to $2." >&2
    echo "dask-gke sandbox image: use EXTRA_PIP_PACKAGES (installed from the sandbox's package index), or run on a real cluster." >&2
    exit 1
}

if [ -n "${EXTRA_APT_PACKAGES:-}" ]; then
    unsupported "EXTRA_APT_PACKAGES=\"${EXTRA_APT_PACKAGES}\"" "a Debian mirror"
fi

if [ -e /opt/app/environment.yml ]; then
    unsupported "/opt/app/environment.yml (conda env update)" "a conda channel"
else
    echo "no environment.yml"
fi

if [ -n "${EXTRA_CONDA_PACKAGES:-}" ]; then
    unsupported "EXTRA_CONDA_PACKAGES=\"${EXTRA_CONDA_PACKAGES}\"" "a conda channel"
fi

if [ -n "${EXTRA_PIP_PACKAGES:-}" ]; then
    echo "EXTRA_PIP_PACKAGES environment variable found.  Installing."
    # Word splitting is wanted: the variable is a space-separated list.
    # shellcheck disable=SC2086
    /opt/conda/bin/pip install ${EXTRA_PIP_PACKAGES} || exit 1
fi
