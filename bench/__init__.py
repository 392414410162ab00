"""jobq's benchmark harness: jobq against RQ, Celery, Dramatiq, Huey and arq on one fresh Redis.

Entry point: ``bench/run.sh`` (see docs/benchmarks.md). The orchestrator (``bench.run``) runs in the
peers' venv; every producer and worker runs as a subprocess in its own system's venv.
"""
