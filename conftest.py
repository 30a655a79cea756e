import os

# pytest collects doctests from src/ and notebooks from notebooks/, labs/ and solutions/. The lab
# modules are not tests: labs/ and solutions/ each have a queue_proxy.py, and importing both under
# one name would clash. The autograder (tests/lab) loads them by path instead.
collect_ignore_glob = ["labs/*.py", "solutions/*.py", "scripts/*.py", "benchmarks/*.py"]

# The suite is hermetic: it never talks to a server configured for the course, and notebooks
# (run by nbval in kernels that inherit this environment) use a fast embedded accelerator.
# Here, at the root, so that `pytest notebooks` alone is as fast as `make test`.
os.environ.pop("INFERLAB_BASE_URL", None)
os.environ.pop("INFERLAB_API_KEY", None)
os.environ.setdefault("INFERLAB_TIME_SCALE", "0.05")
