"""Prefect flows: the story of each job, read top to bottom; deployments and schedules."""

import prefpipe  # noqa: F401 - first: no telemetry, no hub, before Prefect is imported (prefpipe.OFFLINE)
