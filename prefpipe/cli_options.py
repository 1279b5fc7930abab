"""What the `prefpipe` commands share (prefpipe/cli.py, cli_registry.py, cli_analysis.py): their common options,
and the warehouse as a reading or a changing command opens it."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from prefpipe.errors import InputError, PrefpipeError
from prefpipe.settings import TASK_RUNNERS, Settings
from prefpipe.tables import publish_tables
from prefpipe.warehouse import Warehouse

DEFAULTS = Settings()
WarehouseOpt = Annotated[Path | None, typer.Option("--warehouse", help="DuckDB file "
                         "(default: $PREFPIPE_WAREHOUSE or $PREFPIPE_HOME/warehouse.duckdb)")]
LakeOpt = Annotated[str | None, typer.Option("--lake", help="The lake's root, a folder or s3://bucket/prefix: results, "
                   "rewards, analyses and the warehouse-table copies (default: $PREFPIPE_LAKE or $PREFPIPE_HOME)")]
EXCLUDE_OPTION = typer.Option("--exclude-evalset", help="Leave out the annotations whose prompt or a response "
                              "matches this registered evaluation set (repeatable; `all`: every set).")
ExcludeOpt = Annotated[list[str] | None, EXCLUDE_OPTION]
ThresholdOpt = Annotated[float, typer.Option(help="A drop larger than this against the previous night fails the run.")]
TaskRunnerOpt = Annotated[str, typer.Option(help=f"{' | '.join(TASK_RUNNERS)}: threads in this process, or a Dask "
                                                 "cluster (via prefect-dask)")]
DaskAddressOpt = Annotated[str | None, typer.Option(help="With --task-runner dask: the scheduler's address "
                                                    "(tcp://host:8786) (default: a local cluster)")]


def open_warehouse(settings: Settings) -> Warehouse:
    """The warehouse of SETTINGS, for a command that reads it: it must exist."""
    if not settings.warehouse.exists():
        raise PrefpipeError(f"{settings.warehouse}: no warehouse yet; run `prefpipe ingest` first")
    return Warehouse.open(settings)


@contextmanager
def changing_warehouse(settings: Settings):
    """The warehouse of SETTINGS (made if there is none yet), for a command that changes it; its Parquet copy
    for `prefpipe sql` is renewed after."""
    with Warehouse.open(settings) as wh:
        yield wh
        publish_tables(wh.con, settings.tables)


def read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise InputError("no such file", file=path) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not valid UTF-8 (byte {e.start + 1})", file=path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", file=path) from None
