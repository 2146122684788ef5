"""`make bench`: the inference benchmark (python -m bench.run). Not a test: it measures and writes
docs/BENCHMARKS.md and docs/bench_throughput.png."""
