"""pc-datasets: build filesets from Rucio, choose replicas by site, rewrite redirectors."""
