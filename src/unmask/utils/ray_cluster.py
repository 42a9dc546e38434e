"""Join (or start) a Ray cluster and spread one kind of work over it: the engine of ``--engine ray``.

Ray is an optional extra, imported here on first use only, so that ``unmask --help`` and the local
engine never load it. Each worker is a Ray actor that builds its heavy state (a face detector, a
model) once and then takes one item at a time; the driver hands out the items and receives each
result as it comes, so that it alone writes the outputs, exactly as a local run does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Any, Callable, Iterable

from unmask.errors import UnmaskError

logger = logging.getLogger(__name__)

ENGINES = ("local", "ray")
INSTALL_HINT = "pip install 'unmask[ray]'"


def check_engine(engine: str) -> str:
    """``engine`` if it is one of :data:`ENGINES`; one clear line otherwise."""
    if engine not in ENGINES:
        raise UnmaskError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    return engine


def import_ray():
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UnmaskError(f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None):
    """Be connected to a Ray cluster for the duration of the block.

    ``address``: ``auto`` (the cluster ``ray start`` began on this machine), ``HOST:PORT`` or
    ``ray://HOST:PORT`` (a remote one); None starts a cluster on this machine for the block alone.
    A connection already made by the caller (a notebook's, a test's) is used as it is and kept.
    """
    ray = import_ray()
    host_port = _parse_address(address)  # a mistyped address is refused even beside a connection made before
    if ray.is_initialized():
        yield ray
        return
    _check_reachable(address, host_port)
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=logger.isEnabledFor(logging.INFO),
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address}" if address else "on this machine"
        raise UnmaskError(
            f"Cannot reach or start a Ray cluster {where} ({str(exc).splitlines()[0]}); "
            "start one with `ray start --head` and pass --address"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


CONNECT_TIMEOUT_S = 5.0  # a head node that does not accept a connection in this long counts as unreachable


def _parse_address(address: str | None) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT``; None for ``auto`` or no address."""
    if not address or address == "auto":
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UnmaskError(f"--address {address!r} is not auto, HOST:PORT or ray://HOST:PORT")
    return host.strip("[]"), int(port)


def _check_reachable(address: str | None, host_port: tuple[str, int] | None) -> None:
    """Fail in one line when ``host_port`` accepts no connection: Ray itself retries such an address
    for minutes without a word."""
    if host_port is None:
        return
    try:
        socket.create_connection(host_port, timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UnmaskError(
            f"No Ray cluster answers at {address} ({exc.strerror or exc}); check the head node's address and "
            "port (`ray status` on it), or leave out --address to use this machine"
        ) from None


class _Worker:
    """One Ray actor: ``setup(*args)`` once, then ``work(state, item)`` for each item sent.

    It works in the driver's working folder where its node has one (a shared filesystem), so
    that relative paths mean there what they mean to the driver.
    """

    def __init__(self, setup: Callable, args: tuple, cwd: str):
        if os.path.isdir(cwd):
            os.chdir(cwd)
        self.state, self.error = None, None
        try:
            self.state = setup(*args)
        except Exception as exc:  # handed to the driver whole by ready(): Ray keeps only its text
            self.error = exc

    def ready(self) -> Exception | None:
        """The error ``setup`` raised, if any (it then takes no work)."""
        return self.error

    def run(self, work: Callable, item):
        return work(self.state, item)


def _startup_error(exc: BaseException) -> UnmaskError:
    """A worker's failed start as one line (a user's error, such as a missing model, as it is)."""
    if isinstance(exc, UnmaskError):
        return exc
    first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return UnmaskError(f"A Ray worker could not start: {type(exc).__name__}: {first}")


def run_on_actors(
    setup: Callable,
    args: tuple,
    work: Callable,
    items: Iterable,
    *,
    on_done: Callable[[Any, Any], None],
    on_lost: Callable[[Any, str], None],
    workers: int | None = None,
    gpus_per_worker: float = 0,
) -> None:
    """Run ``work(setup(*args), item)`` for every item on the connected cluster's actors.

    ``workers`` actors (default: one per CPU of the cluster, or per GPU with ``gpus_per_worker``)
    take one item at a time, so none waits behind another's long item. ``on_done(item, result)``
    runs here, in the driver, as each item finishes. An actor that dies (a crash in a decoder, the
    OOM killer) costs only the item it held, reported to ``on_lost(item, why)``; Ray starts it
    again for the next. Ctrl-C (KeyboardInterrupt), or an error in a callback, kills the actors,
    which stops the items in flight, and is raised again.

    Raises:
        UnmaskError: a worker cannot start (the error its ``setup`` raised, when it is a user's), or
            GPUs are asked for on a cluster without any.
    """
    ray = import_ray()
    queue = list(items)
    if not queue:
        return
    resources = ray.cluster_resources()
    if gpus_per_worker and resources.get("GPU", 0) < gpus_per_worker:  # its workers would wait for ever
        raise UnmaskError("A CUDA device was asked for, but the Ray cluster has no GPU; use --device cpu")
    if workers is None:
        workers = int(resources.get("GPU" if gpus_per_worker else "CPU", 1) / (gpus_per_worker or 1)) or 1
    remote = ray.remote(num_cpus=1, num_gpus=gpus_per_worker, max_restarts=-1)(_Worker)
    actors = [remote.remote(setup, args, os.getcwd()) for _ in range(min(workers, len(queue)))]
    try:
        try:
            errors = ray.get([actor.ready.remote() for actor in actors])
        except ray.exceptions.RayError as exc:  # a worker that died starting (unmask missing on a node ...)
            raise _startup_error(exc) from None
        if any(errors):
            raise _startup_error(next(e for e in errors if e)) from None
        logger.info("%d items on %d Ray workers", len(queue), len(actors))
        _dispatch(ray, actors, work, queue, on_done, on_lost)
    finally:
        for actor in actors:  # stops what they are doing now (Ctrl-C), or frees them (done)
            ray.kill(actor, no_restart=True)


def _dispatch(ray, actors: list, work: Callable, queue: list, on_done: Callable, on_lost: Callable) -> None:
    """Keep each actor busy with one item until ``queue`` is empty, reporting each result."""
    idle, in_flight = list(actors), {}
    queue.reverse()  # popped from the end: the caller's order
    while queue or in_flight:
        while queue and idle:
            actor, item = idle.pop(), queue.pop()
            in_flight[actor.run.remote(work, item)] = (actor, item)
        ready, _ = ray.wait(list(in_flight), num_returns=1)
        for ref in ready:
            actor, item = in_flight.pop(ref)
            idle.append(actor)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                logger.warning("a Ray worker died while it held %s: %s", item, str(exc).splitlines()[0])
                on_lost(item, "the worker process died on this input (a crash in a decoder or detector)")
                continue
            on_done(item, result)
