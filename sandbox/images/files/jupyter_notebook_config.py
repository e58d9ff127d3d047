# The same settings under the classic notebook's names (NotebookApp), for
# servers that still read them, as docker-stacks' base-notebook ships them
# (/etc/jupyter). See jupyter_server_config.py beside it.
c = get_config()  # noqa: F821
c.NotebookApp.ip = "0.0.0.0"  # noqa: S104 (reached through the pod\'s Service)
c.NotebookApp.open_browser = False
c.FileContentsManager.delete_to_trash = False
