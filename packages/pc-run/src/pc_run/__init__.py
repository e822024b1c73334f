"""pc-run: the processor, the local and Dask/Parsl executors, and the ``run`` command."""
