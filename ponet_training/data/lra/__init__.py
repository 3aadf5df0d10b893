"""Long Range Arena data: ListOps and Pathfinder generated here, the other tasks read from the Hub or the LRA
release's files, all as `datasets.DatasetDict`s of id sequences."""
