"""The Celery side: thin tasks over the delivery policy, and the scheduler's sweeps."""
