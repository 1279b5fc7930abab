"""prefpipe: curate human preference data, train and evaluate reward models."""

import os
from importlib import metadata

try:
    __version__ = metadata.version("prefpipe")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

# No telemetry and no hub at run time, wherever prefpipe runs (the CLI, flows, tests, benchmarks): set once,
# here, before Prefect, Great Expectations or transformers are imported; a user's own setting wins.
OFFLINE = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GX_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1",
           "DO_NOT_TRACK": "1"}
for _name, _value in OFFLINE.items():
    os.environ.setdefault(_name, _value)
