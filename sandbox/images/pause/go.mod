module dask-gke/sandbox/pause

go 1.26
