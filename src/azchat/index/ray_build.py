"""`azchat index --ray [ADDRESS]`: the same build, with the chunk embedding spread over a Ray cluster.

Notes are read and chunked here, as in a local build (indexing.py), and the finished index is written here
through the same atomic generation writer; only the vectors of the chunks that need embedding are computed
on the cluster. They go out as Arrow blocks (row number + text, longest first) to a Ray Data `map_batches`
over an actor pool: each actor builds the embedder once, from the name the manifest records (plus the ONNX
export's folder when the worker sees it), and checks that it got the same model (name, dimension,
prefixes). Vectors come back per block and are put back in row order, so the index is the one the local
build writes (same chunks, same vectors within float tolerance, same answers).

ADDRESS: none starts a private local cluster for this build (bound to 127.0.0.1, stopped at the end);
`auto` joins the cluster running on this machine (RAY_ADDRESS or `ray start`); anything else is a cluster
address (`host:port`, `ray://host:10001`). Every node needs azchat and the model installed (same versions):
the actors import azchat and resolve the model offline, as `azchat index` does.

Ray serializes what it sends (our texts, the vectors, this module's classes by reference); azchat's own
files never hold a pickle.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import AzchatError, ModelError

INSTALL = 'pip install "azchat[ray]"'
LOCAL = "local"            # `--ray` with no address: start a cluster on this machine for this build
BLOCK_ROWS = 128           # texts per Ray block (one map_batches call); small enough for even work and progress


class RayMissingError(AzchatError):
    exit_code = 7


def require_ray(local: bool = False):
    """The `ray` module with Ray Data, or a clear error naming the extra to install. `local`: the cluster
    will be started here, so its servers are made to listen on 127.0.0.1 only (see _loopback_only)."""
    _quiet_ray_env()
    if local:
        _loopback_only()
    try:
        import ray
        import ray.data  # noqa: F401  (needs pyarrow: the [data] part of the extra)
    except ImportError as exc:
        raise RayMissingError(f"azchat index --ray needs Ray with Ray Data, which is not installed here "
                              f"({exc.name or exc}): {INSTALL}") from exc
    return ray


# -- the embedder, described for the workers and built there ---------------------------------------------------

def embedder_spec(embedder) -> dict:
    """What a worker needs to build the same embedder: its kind and the name the manifest records."""
    from .embedding import HashEmbedder, SentenceTransformerEmbedder, prefixes

    spec = {"name": embedder.name, "dim": int(embedder.dim), "max_tokens": int(embedder.max_tokens),
            "prefixes": prefixes(embedder)}
    if isinstance(embedder, HashEmbedder):          # the tests' fast fake: fully described by its settings
        return {**spec, "kind": "hash"}
    if isinstance(embedder, SentenceTransformerEmbedder):
        return {**spec, "kind": "sentence-transformers"}
    from .onnx_embedding import OnnxEmbedder

    if isinstance(embedder, OnnxEmbedder):
        return {**spec, "kind": "onnx", "folder": str(Path(embedder.folder).resolve())}
    raise AzchatError(f"azchat index --ray cannot send the embedder {embedder.name!r} "
                      f"({type(embedder).__name__}) to Ray workers; build without --ray.")


def embedder_from_spec(spec: dict, threads: int = 1):
    """Build the embedder a spec describes (on a worker). The ONNX export is used when this worker sees its
    folder; otherwise the model is resolved from its name (sentence-transformers), as `azchat index` would.
    Raises ModelError when what the name resolves to here is not the driver's model."""
    from .embedding import HashEmbedder, SentenceTransformerEmbedder, prefixes
    from .models import resolve_model

    kind = spec["kind"]
    if kind == "hash":
        p = spec["prefixes"]
        built = HashEmbedder(dim=spec["dim"], max_tokens=spec["max_tokens"], name=spec["name"],
                             query_prefix=p["query"], passage_prefix=p["passage"])
    else:
        built = None
        if kind == "onnx" and Path(spec["folder"]).is_dir():
            from .onnx_embedding import OnnxEmbedder

            built = OnnxEmbedder(Path(spec["folder"]), threads=threads)
        if built is None:
            built = SentenceTransformerEmbedder(resolve_model(spec["name"]))
            try:
                import torch

                torch.set_num_threads(threads)
            except ImportError:
                pass
    got = {"name": built.name, "dim": int(built.dim), "prefixes": prefixes(built)}
    want = {k: spec[k] for k in got}
    if got != want:
        import socket

        raise ModelError(f"On the Ray worker {socket.gethostname()}, the model {spec['name']!r} is not the one the "
                         f"build uses ({got} != {want}); install the same model on every node.")
    return built


class EmbedBlock:
    """The Ray Data actor: builds the embedder once, then embeds one block of (row, text) per call."""

    def __init__(self, spec: dict, threads: int = 1):
        from .embedding import embed_passages

        self._embed = embed_passages
        self.embedder = embedder_from_spec(spec, threads)
        self.worker = os.getpid()     # which actor embedded a block (the build reports how many took part)

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch["text"]]
        vectors = np.ascontiguousarray(self._embed(self.embedder, texts), dtype=np.float32)
        return {"row": np.asarray(batch["row"], dtype=np.int64), "vector": vectors,
                "worker": np.full(len(texts), self.worker, dtype=np.int64)}


# -- the cluster --------------------------------------------------------------------------------------------------

def _quiet_ray_env() -> None:
    # nothing leaves this machine: no usage statistics; the dashboard is not started
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")


LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _loopback_only() -> None:
    """Make a cluster started by this process a single-node one on 127.0.0.1: Ray then takes the loopback
    address as the node's address, and its servers (GCS, raylet, object manager, workers) listen on 127.0.0.1
    instead of every interface. Ray reads the switch when it is imported (and its processes inherit it).
    Clients need a token (Ray's token authentication): a fresh one in the environment unless one is set (or
    Ray is imported already: then Ray's own, ~/.ray/auth_token)."""
    os.environ[LOOPBACK_ENV] = "0"
    import sys

    # (Ray reads its token settings when it is imported: a token set later would leave this driver without)
    if "ray" not in sys.modules and not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        import secrets        # Ray's token authentication, with a token of this build's own (none is saved)

        os.environ.setdefault("RAY_AUTH_MODE", "token")
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None and getattr(constants, "ENABLE_RAY_CLUSTER", False):
        constants.ENABLE_RAY_CLUSTER = False      # ray was imported before this build started


def _quiet_ray_data() -> None:
    """Ray Data's console messages (progress disabled, dataset finished) off the terminal; its log file stays."""
    import logging

    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.ERROR)


def connect(address: str | None, log=None):
    """Join or start a cluster; returns (ray, the address used, True when this call started it)."""
    ray = require_ray(local=address in (None, "", LOCAL))
    import logging

    if ray.is_initialized():
        return ray, "already connected", False
    if address in (None, "", LOCAL):
        cpus = os.cpu_count() or 1
        if log:
            log(f"Starting a local Ray cluster ({cpus} CPUs, 127.0.0.1)")
        ray.init(num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 object_store_memory=_local_object_store(), logging_level=logging.ERROR,
                 log_to_driver=False, configure_logging=True)
        return ray, LOCAL, True
    if log:
        log(f"Joining the Ray cluster at {address}")
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise AzchatError(f"Could not join the Ray cluster at {address!r}: {exc}") from exc
    return ray, address, False


def _local_object_store() -> int:
    """The local cluster's object store: 1 GiB (AZCHAT_RAY_OBJECT_STORE_MB); past it Ray spills to disk."""
    try:
        mb = int(os.environ.get("AZCHAT_RAY_OBJECT_STORE_MB", "1024"))
    except ValueError:
        mb = 1024
    return max(mb, 80) * 1024 * 1024


def _reason(exc: BaseException) -> str:
    """The azchat error a Ray exception carries (a worker's ModelError), else its first line."""
    text = str(exc)
    for name in ("ModelError", "AzchatError"):
        if f"{name}: " in text:
            return text.rsplit(f"{name}: ", 1)[1].strip().splitlines()[0]
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def _cluster_cpus(ray) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class RayEmbed:
    """An `embed(embedder, texts, progress=)` for build_index that runs on a Ray cluster. It connects on its
    first call (a build with nothing to embed never starts Ray) and records what it did in `.info`."""

    def __init__(self, address: str | None = None, workers: int | None = None, threads: int = 1,
                 block_rows: int = BLOCK_ROWS, log=None):
        if workers is not None and workers < 1:
            raise AzchatError("--ray-workers must be 1 or more.")
        self.address, self.workers, self.threads = address, workers, max(1, int(threads))
        self.block_rows = max(1, int(block_rows))
        self.log = log or (lambda msg: None)
        self.ray = None
        self.started = False     # this build started the (local) cluster
        self.joined = False      # this build connected to Ray (and so disconnects at the end)
        self.info: dict = {"address": address or LOCAL, "workers": 0, "texts": 0, "blocks": 0,
                           "connect_seconds": 0.0, "embed_seconds": 0.0}

    def __call__(self, embedder, texts: Sequence[str], progress=None) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, embedder.dim), dtype=np.float32)
        spec = embedder_spec(embedder)       # before anything starts: an embedder Ray cannot send fails fast
        t0 = time.perf_counter()
        if self.ray is None:
            self.ray, used, self.started = connect(self.address, self.log)
            self.joined = used != "already connected"
            self.info["address"] = used
        ray = self.ray
        t1 = time.perf_counter()
        import pyarrow as pa

        workers = self.workers or max(1, _cluster_cpus(ray) // self.threads)
        order = np.argsort([-len(t) for t in texts], kind="stable")     # longest first: even work at the end
        table = pa.table({"row": pa.array(order, type=pa.int64()),
                          "text": pa.array([texts[i] for i in order], type=pa.large_string())})
        size = max(1, min(self.block_rows, -(-len(texts) // (4 * workers))))   # >= 4 blocks a worker if it can
        blocks = [table.slice(s, size) for s in range(0, len(texts), size)]
        workers = min(workers, len(blocks))
        _quiet_ray_data()
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False     # our own progress line (rate, time left) instead
        if hasattr(ctx, "print_on_execution_start"):
            ctx.print_on_execution_start = False
        ds = ray.data.from_arrow(blocks).map_batches(
            EmbedBlock, fn_constructor_kwargs={"spec": spec, "threads": self.threads},
            batch_size=None, batch_format="numpy", zero_copy_batch=True,
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=self.threads)
        self.log(f"Embedding {len(texts)} chunks on Ray: {workers} worker{'s' if workers != 1 else ''} × "
                 f"{self.threads} CPU, {len(blocks)} blocks of ≤ {size}")
        out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
        seen = np.zeros(len(texts), dtype=bool)
        pids: set[int] = set()
        done = 0
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
                rows = np.asarray(batch["row"], dtype=np.int64)
                vecs = np.asarray(batch["vector"], dtype=np.float32).reshape(len(rows), embedder.dim)
                out[rows] = vecs
                seen[rows] = True
                pids.update(int(x) for x in np.unique(batch["worker"]))
                done += len(rows)
                if progress:
                    progress(min(done, len(texts)), len(texts))
        except AzchatError:
            raise
        except Exception as exc:      # a worker's error arrives wrapped in Ray's: one sentence, not a traceback
            raise AzchatError(f"Embedding on Ray failed: {_reason(exc)}. The index was not changed.") from exc
        if not seen.all():
            raise AzchatError(f"Ray returned vectors for {int(seen.sum())} of {len(texts)} chunks; the index "
                              "was not changed.")
        t2 = time.perf_counter()
        self.info.update(workers=workers, workers_used=len(pids), threads_per_worker=self.threads,
                         embedder=spec["kind"], texts=self.info["texts"] + len(texts),
                         blocks=self.info["blocks"] + len(blocks),
                         connect_seconds=round(self.info["connect_seconds"] + t1 - t0, 3),
                         embed_seconds=round(self.info["embed_seconds"] + t2 - t1, 3),
                         rate=round(len(texts) / (t2 - t1), 1) if t2 > t1 else None)
        return out

    def close(self) -> None:
        """Stop the local cluster this build started; leave a joined cluster running (only disconnect)."""
        if self.ray is not None and self.joined and self.ray.is_initialized():
            self.ray.shutdown()
        self.ray = None


def build_on_ray(notes_dir=None, index_dir=None, *, address: str | None = None, workers: int | None = None,
                 threads: int = 1, block_rows: int = BLOCK_ROWS, log=None, **build_kwargs):
    """build_index with the embedding on Ray; returns its BuildStats with `.ray` (address, workers, blocks,
    connect and embed seconds, rate). A missing Ray fails before anything is read."""
    from .building import build_index

    require_ray(local=address in (None, "", LOCAL))
    embed = RayEmbed(address, workers=workers, threads=threads, block_rows=block_rows, log=log)
    try:
        stats = build_index(notes_dir, index_dir, log=log, embed=embed, **build_kwargs)
    finally:
        embed.close()
    stats.ray = dict(embed.info)
    return stats


def ray_summary(info: dict) -> str:
    """One line for `azchat index --ray` (text output)."""
    if not info.get("texts"):
        return "Ray: nothing to embed, no cluster was used."
    return (f"Ray ({info['address']}): {info['texts']} chunks embedded by {info['workers']} worker"
            f"{'s' if info['workers'] != 1 else ''} in {info['embed_seconds']:.1f}s "
            f"({info.get('rate') or 0:.1f}/s; connecting {info['connect_seconds']:.1f}s).")


__all__ = ["build_on_ray", "RayEmbed", "EmbedBlock", "embedder_spec", "embedder_from_spec", "require_ray",
           "RayMissingError", "INSTALL", "LOCAL"]
