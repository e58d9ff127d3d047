#!/bin/bash
# The notebook image's default command, as upstream's /run.sh: JUPYTERLAB_ARGS is
# word-split on purpose (it carries extra command-line options).
# shellcheck disable=SC2086
exec jupyter lab --NotebookApp.base_url="${NB_PREFIX:-/}" --NotebookApp.allow_origin="*" ${JUPYTERLAB_ARGS}
