"""Fault-test harness: Redis servers, a TCP proxy, a ledger kept outside Redis, and its checker.

Nothing in this package imports jobq_core, so the harness (and its unit tests) work before and
independently of the engine under test.
"""
