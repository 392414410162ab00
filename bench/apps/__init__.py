"""Task modules that each system's workers import: the same three tasks written per library.

- ``noop``: report completion and return.
- ``sleep10ms``: sleep 10 ms (``asyncio.sleep`` where the library runs coroutines), then report.
- ``latency``: report ``time.time() - t_enqueue``, where the producer took ``t_enqueue`` just
  before its enqueue call.

Each module reads the server URL from ``BENCH_REDIS_URL``, which the harness sets.
"""
