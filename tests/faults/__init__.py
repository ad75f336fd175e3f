"""The fault trials: the service's contracts (exactly once, nothing stuck, nothing leaked) under
SIGKILLs, lost replies, replicas, restarts, outages, secret canaries and hostile repositories.

Quick by default (inside `make test`); `TC_SCHEDULER_FAULTS=full` (`make test-faults`) runs
the sizes of issue 14's acceptance. Each trial prints its figures; see harness.py.
"""
