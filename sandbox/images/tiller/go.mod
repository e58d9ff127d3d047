module dask-gke/sandbox/tiller

go 1.26
