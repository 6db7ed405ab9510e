"""The scenarios of the benchmark, each bounded in count and time, in the order they run."""
