"""The process pool that both conversions (``convert`` and ``shard_convert``) run tasks in."""

import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

__all__ = ["run_tasks", "worker_env"]


def worker_env(workers: int) -> dict[str, str]:
    """What a worker process of a pool of ``workers`` on this machine needs: its share of the
    cores for the network (``$L3IC_THREADS``, unless the caller set it)."""
    if "L3IC_THREADS" in os.environ:
        return {"L3IC_THREADS": os.environ["L3IC_THREADS"]}
    return {"L3IC_THREADS": str(max(1, (os.cpu_count() or 1) // workers))}


def _set_env(env: dict[str, str]) -> None:
    os.environ.update(env)


def run_tasks(
    fn: Callable, tasks: Iterable, workers: int, catch: tuple[type[Exception], ...] = ()
) -> Iterator[tuple]:
    """Yields ``(task, fn(task))`` as the tasks finish.

    With one worker the tasks run here, in order. Otherwise they run in ``workers`` spawned
    processes (``fn`` must pickle: a module's function or a ``functools.partial`` of one), each
    with its share of the cores (``worker_env``), at most two per worker in flight.

    Args:
        fn: what to do with a task.
        tasks: the tasks.
        workers: processes, 1 or more.
        catch: exception types yielded in place of a task's result (the run goes on); any
            other exception ends the run, and the tasks not started are cancelled.
    """
    if workers == 1:
        for task in tasks:
            try:
                yield task, fn(task)
            except catch as e:
                yield task, e
        return
    pool = ProcessPoolExecutor(
        workers, multiprocessing.get_context("spawn"), _set_env, (worker_env(workers),)
    )
    try:
        todo, pending = iter(tasks), {}
        while True:
            for task in itertools.islice(todo, 2 * workers - len(pending)):
                pending[pool.submit(fn, task)] = task
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                try:
                    yield task, future.result()
                except catch as e:
                    yield task, e
    finally:
        pool.shutdown(cancel_futures=True)
