"""The worker runtime: what runs inside a django-q2 cluster's worker processes.

drain (the broker entry points), execution (a claimed job's tasks), context (what a
handler sees), logbuffer and heartbeat. Every state change goes through jobs.engine.
"""
