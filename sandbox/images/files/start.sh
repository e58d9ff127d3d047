#!/bin/bash
# Entrypoint of the dask-gke sandbox's ghcr.io/dask/dask-notebook image (under
# tini -g), with the public behaviour of docker-stacks' start.sh: run the hooks of
# /usr/local/bin/start-notebook.d and before-notebook.d (*.sh sourced, other
# executables run), then the command (bash when none) as NB_USER.
set -e

run_hooks() {
    local hook
    [ -d "$1" ] || return 0
    echo "Running hooks in: $1 as uid: $(id -u) gid: $(id -g)"
    for hook in "$1"/*; do
        [ -e "${hook}" ] || continue
        case "${hook}" in
            *.sh)
                echo "Sourcing shell script: ${hook}"
                # shellcheck disable=SC1090
                . "${hook}"
                ;;
            *)
                if [ -x "${hook}" ]; then
                    echo "Running executable: ${hook}"
                    "${hook}"
                fi
                ;;
        esac
    done
}

if [ $# -eq 0 ]; then
    cmd=(bash)
else
    cmd=("$@")
fi

run_hooks /usr/local/bin/start-notebook.d

if [ "$(id -u)" = 0 ]; then
    # Started as root: hooks run as root, the command as NB_USER (the image's
    # default user is already NB_USER, as upstream's).
    run_hooks /usr/local/bin/before-notebook.d
    echo "Running as ${NB_USER}: ${cmd[*]}"
    exec setpriv --reuid="${NB_UID}" --regid="${NB_GID}" --init-groups \
        env HOME="/home/${NB_USER}" "${cmd[@]}"
fi

run_hooks /usr/local/bin/before-notebook.d
echo "Executing the command: ${cmd[*]}"
exec "${cmd[@]}"
