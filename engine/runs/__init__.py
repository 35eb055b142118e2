"""A run's files without torch: run folders, status.json, the index of runs, the live files a
run keeps, and following a run from them."""
