"""The dask-gke sandbox: a local GKE API emulator and KWOK clusters."""
