# pytest collects doctests from src/ and notebooks from notebooks/, labs/ and solutions/. The lab
# modules are not tests: labs/ and solutions/ each have a queue_proxy.py, and importing both under
# one name would clash. The autograder (tests/lab) loads them by path instead.
collect_ignore_glob = ["labs/*.py", "solutions/*.py", "scripts/*.py", "benchmarks/*.py"]
