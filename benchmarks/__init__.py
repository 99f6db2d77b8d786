"""Speed and memory benchmarks of the pipeline against its peers and naive paths.

`python -m benchmarks` (or `make bench`) measures every item side by side on the same model
and data and writes benchmarks/RESULTS.md. These are measurements, not tests: the test
suite only checks that the compared paths give identical results.
"""
