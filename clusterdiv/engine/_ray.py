"""The Ray engine: chunks as a Ray Dataset, `map_batches` over an actor pool, results as they finish."""

from __future__ import annotations

import os
import pickle
import socket
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from clusterdiv.engine import (
    KILL_ONCE_ENV,
    ChunkFailure,
    EngineError,
    EngineSettings,
    EngineUnreachable,
    Worker,
)

# Test and deployment settings a worker needs to see as the driver does (plugins, the cache-free
# model locations, the fault-injection marker of tests/test_engine_ray.py).
_FORWARDED_PREFIXES = ("CLUSTERDIV_", "HF_", "TRANSFORMERS_", "LITELLM_")

_INIT_LOCK = threading.Lock()


PROBE_TIMEOUT_S = 5.0
"""How long a TCP connect to the cluster address may take before the address counts as unreachable."""

RAY_CLIENT_PORT = 10001  # what `ray://host` means without a port


def _probe(address: str | None) -> None:
    """Refuse an address where nothing listens, in at most PROBE_TIMEOUT_S per host.

    `ray.init` does not give up on one: for 127.0.0.1:1 it was still retrying the GCS after 212 s,
    with a line of C++ log on stderr for each try and no message of its own. A TCP connect to the
    same host:port tells a closed port at once and a silent host within the timeout. `auto` and no
    address are Ray's to resolve (its cluster file, or a new cluster here). For a loopback host Ray
    connects to the node's own address instead, so that one is tried too.
    """
    target = address if address is not None else os.environ.get("RAY_ADDRESS")
    if not target or target in ("auto", "local"):
        return
    scheme, _, rest = target.rpartition("://")
    host, colon, port_text = rest.rstrip("/").rpartition(":")
    if not colon:
        host, port_text = rest.rstrip("/"), str(RAY_CLIENT_PORT) if scheme == "ray" else ""
    host = host.strip("[]")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise EngineUnreachable(f"Ray address {target!r} is not host:port or ray://host:port", option="ray_address")
    hosts = [host]
    if scheme != "ray" and host in ("localhost", "127.0.0.1", "::1"):
        import ray.util

        hosts.append(ray.util.get_node_ip_address())
    reasons = []
    for candidate in hosts:
        try:
            socket.create_connection((candidate, int(port_text)), timeout=PROBE_TIMEOUT_S).close()
            return
        except TimeoutError:
            reasons.append(f"no answer from {candidate} within {PROBE_TIMEOUT_S:g} s")
        except OSError as exc:
            reasons.append(f"{candidate}: {exc.strerror or exc}")
    raise EngineUnreachable(f"cannot reach Ray at {target} ({'; '.join(reasons)}): is a cluster running there?",
                            option="ray_address")


def _connect(address: str | None) -> Any:
    import ray

    with _INIT_LOCK:
        if not ray.is_initialized():
            _probe(address)
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            except Exception as exc:  # noqa: BLE001 - any failure to join is one line for the user
                where = address or "a new local cluster"
                raise EngineError(f"cannot start or join Ray at {where}: {str(exc).splitlines()[0]}",
                                  option="ray_address") from exc
    return ray


class _Actor:
    """One actor of the pool: builds its worker once (one model per process), maps chunks."""

    def __init__(self, worker: Worker):
        self.worker = worker

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        marker = os.environ.get(KILL_ONCE_ENV)
        if marker:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os._exit(1)
        out = []
        for blob in batch["chunk"]:
            try:
                result: Any = self.worker(pickle.loads(blob))
            except Exception as exc:  # noqa: BLE001 - recorded for the chunk's items, never dropped
                result = ChunkFailure(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
            out.append(pickle.dumps(result))
        return {"i": batch["i"], "out": np.array(out, dtype=object)}


class RayEngine:
    name = "ray"

    def __init__(self, settings: EngineSettings):
        self.settings = settings
        self.ray = _connect(settings.address)

    def workers(self) -> int:
        if self.settings.workers is not None:
            return self.settings.workers
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def map(self, worker: Worker, chunks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        if not chunks:
            return
        import ray.data

        # A dataset keeps a copy of the context it was made in: set ours for it, give the caller theirs back.
        context = ray.data.DataContext.get_current()
        ours = {"max_errored_blocks": -1,  # a chunk that fails for good is reported below, the others go on
                "enable_progress_bars": False, "print_on_execution_start": False}
        theirs = {name: getattr(context, name) for name in ours}
        items = [{"i": k, "chunk": pickle.dumps(chunk)} for k, chunk in enumerate(chunks)]
        env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIXES)}
        retries = self.settings.max_retries
        try:
            for name, value in ours.items():
                setattr(context, name, value)
            with warnings.catch_warnings():
                # Actor restarts and task retries have no named parameter yet; Ray warns about passing them raw.
                warnings.simplefilter("ignore")
                # One chunk in flight per actor: a dead actor loses one chunk, and Ray retries it on its restart.
                pool = ray.data.ActorPoolStrategy(size=min(self.workers(), len(items)), max_tasks_in_flight_per_actor=1)
                dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                    _Actor, fn_constructor_args=(worker,), batch_size=1, batch_format="numpy", compute=pool,
                    num_cpus=1, runtime_env={"env_vars": env}, max_restarts=retries, max_task_retries=retries,
                )
        finally:
            for name, value in theirs.items():
                setattr(context, name, value)
        seen: set[int] = set()
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for k, blob in zip(batch["i"], batch["out"], strict=True):
                    if int(k) not in seen:  # a retried chunk that finished twice counts once
                        seen.add(int(k))
                        yield int(k), pickle.loads(blob)
        except Exception as exc:  # noqa: BLE001 - the cluster itself failed: name it, once
            if not seen:
                raise EngineError(f"Ray could not run the stage: {str(exc).splitlines()[0][:200]}") from exc
            reason = f"Ray stopped: {str(exc).splitlines()[0][:200]}"
        else:
            reason = f"Ray task failed for good: its worker died on each of {retries + 1} attempts"
        for k in range(len(chunks)):
            if k not in seen:
                yield k, ChunkFailure(reason)
