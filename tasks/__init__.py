"""Prefect tasks: one unit of work each, with retries where I/O can fail."""

import prefpipe  # noqa: F401 - first: no telemetry, no hub, before Prefect is imported (prefpipe.OFFLINE)
from prefpipe.errors import PrefpipeError


def retry_unless_input_error(task, task_run, state) -> bool:
    """A PrefpipeError (a bad file, a wrong flag) fails the same way again: it is never retried."""
    return not isinstance(state.data, PrefpipeError)
