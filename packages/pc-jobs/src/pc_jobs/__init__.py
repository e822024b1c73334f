"""pc-jobs: HTCondor manual-job executors, job monitoring and output merging."""
