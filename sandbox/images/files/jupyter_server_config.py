# System-wide Jupyter Server configuration of the dask-gke sandbox's notebook
# image (/etc/jupyter), with the public behaviour of docker-stacks' base-notebook:
# listen on every IPv4 interface of the pod, never try to open a browser.
# Jupyter loads it from its config path, unless `--config FILE` names another
# file: then only that file is read (and the server listens on localhost).
c = get_config()  # noqa: F821
c.ServerApp.ip = "0.0.0.0"  # noqa: S104 (reached through the pod\'s Service)
c.ServerApp.open_browser = False
# Deleting a file in the file browser removes it (a pod has no desktop trash).
c.FileContentsManager.delete_to_trash = False
