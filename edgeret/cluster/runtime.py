"""Where the work runs and where the vectors live: Ray (local or an address) and Milvus (local milvus-lite or a URI)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LibraryError, UsageError
from ..settings import ENV_MILVUS_TOKEN, env

if TYPE_CHECKING:
    from ..indexer import Progress
    from .index import ClusterOptions

LOCAL_OBJECT_STORE = 512 << 20  # a local trial cluster needs little shared memory: blocks are a batch of photos
MILVUS_LITE = "milvus.db"  # the local Milvus under the library folder

log = logging.getLogger(__name__)

# read when ray and grpc are first imported, so set before either is
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports leave the machine
# Ray starts its processes while the local Milvus serves gRPC from this one: grpcio's fork handlers would only
# log (or stall) on every fork, and nothing here forks a process that goes on using gRPC
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


@contextlib.contextmanager
def ray_session(address: str | None, cpus: int | None = None) -> Iterator[None]:
    """Connect to the Ray cluster at `address`, or start a local one with `cpus` CPUs; a local one is stopped after."""
    import ray

    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if ray.is_initialized():  # a caller (a test, a notebook) runs Ray already: use it as it is
        yield
        return
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=cpus or os.cpu_count() or 1, object_store_memory=LOCAL_OBJECT_STORE, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise LibraryError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {e}") from None
    _quiet_ray_data()
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def worker_errors() -> Iterator[None]:
    """Re-raise a Ray worker's failure as the edgeret error it was (a missing model, an execution provider…)."""
    import ray.exceptions

    try:
        yield
    except ray.exceptions.RayError as e:
        raise as_edgeret_error(e) from None


def as_edgeret_error(e: Exception) -> Exception:
    """The EdgeretError a worker raised, rebuilt from Ray's report of it; else a LibraryError with its last line."""
    from .. import errors

    text = str(getattr(e, "error_msg", "") or e)
    found = re.findall(r"^edgeret\.errors\.(\w+): (.+)$", text, re.MULTILINE)
    if found:
        name, message = found[-1]
        cls = getattr(errors, name, None)
        if isinstance(cls, type) and issubclass(cls, errors.EdgeretError):
            return cls(message)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return LibraryError(f"a Ray worker failed: {lines[-1] if lines else type(e).__name__}")


def check_resources(workers: int, threads: int, gpus: int = 0, remote: bool = False) -> None:
    """Refuse a pool the cluster cannot place (Ray would wait for it forever); a remote cluster may autoscale."""
    import ray

    have = ray.cluster_resources()
    short = [f"{need} {kind} ({have.get(kind, 0):g} in the cluster)"
             for kind, need in (("CPU", workers * threads), ("GPU", workers * gpus)) if need > have.get(kind, 0)]
    if not short:
        return
    message = f"{workers} worker(s) of {threads} thread(s) need {' and '.join(short)}"
    if not remote:
        gpu_short = workers * gpus > have.get("GPU", 0)
        hint = "use --device cpu" if gpu_short else "lower --workers/--threads or raise --cpus"
        raise UsageError(f"{message}: {hint}")
    log.warning("%s: waiting for the cluster to provide them", message)


def run_on_pool(items: list[dict], worker: type, kwargs: dict, opts: ClusterOptions, batch_size: int,
                on_batch: Callable[[dict], None], progress: Progress | None = None,
                cancel: Callable[[], bool] | None = None, gpus: int = 0) -> bool:
    """Map `items` through `worker` (a Ray Data map_batches class built with `kwargs`) on a pool of opts.workers
    actors of opts.threads CPUs and `gpus` GPUs, `batch_size` items a batch; `on_batch` takes each result as it
    comes, then progress is reported and `cancel` asked. Returns whether `cancel` stopped it."""
    import ray.data

    check_resources(opts.workers, opts.threads, gpus, remote=bool(opts.ray))
    ds = ray.data.from_items(items, override_num_blocks=max(1, -(-len(items) // batch_size))).map_batches(
        worker, batch_size=batch_size, batch_format="numpy", fn_constructor_kwargs=kwargs,
        compute=ray.data.ActorPoolStrategy(size=opts.workers), num_cpus=opts.threads, num_gpus=gpus)
    done = 0
    with worker_errors():
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            on_batch(batch)
            done += len(batch["path"])
            if progress:
                progress(done, len(items), str(batch["path"][-1]))
            if cancel and cancel():
                return True
    return False


def _quiet_ray_data() -> None:
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # edgeret shows its own progress
    ctx.print_on_execution_start = False


def milvus_client(library: Path, uri: str | None):
    """A pymilvus client for `uri`, or for the local milvus-lite database in the library folder."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # it logs every failed call; edgeret reports them
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)  # milvus-lite answers unknown calls with a trace
    options = {}
    if uri is None:
        library.mkdir(parents=True, exist_ok=True)
        uri = str(library / MILVUS_LITE)
        # milvus-lite's in-process server allows a keepalive ping every 5 minutes, pymilvus sends one every 10 s
        options = {"grpc_options": {"grpc.keepalive_time_ms": 300_000, "grpc.keepalive_permit_without_calls": 0}}
    try:
        return MilvusClient(uri, token=env(ENV_MILVUS_TOKEN) or "", **options)
    except MilvusException as e:
        raise LibraryError(f"cannot open Milvus at {uri}: {e.message}") from None
    except Exception as e:  # the local database is locked by another process, or the server is unreachable
        raise LibraryError(f"cannot open Milvus at {uri}: {e}") from None
