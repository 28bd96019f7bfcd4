"""Grids of independent cells for any scenario: one by one, in local processes or on Ray.

A scenario whose work splits into independent cells (each a pure function of some shared inputs
and its own arguments, e.g. one (method, perturbation, strength) of a robustness grid) hands them
to :func:`run_cells` with the run's :class:`Executor` (``ctx.executor``)::

    rows = run_cells(run_cell, [(cell_id, (p, s)) for p, s in todo], shared=(method, clips),
                     store=ctx.work_dir / "cells.jsonl", fingerprint=fp,
                     executor=ctx.executor)

* ``Executor()`` (the default): cells run one after another in this process;
* ``Executor(workers=N)``: in ``N`` local worker processes (spawned, so torch and onnxruntime
  start clean in each; ``fn`` and ``shared`` reach them through cloudpickle where installed);
* ``Executor(ray="local")`` or ``Executor(ray="ray://head:10001")`` (or ``"auto"``): as Ray tasks
  of one CPU each, on a local instance of ``workers`` CPUs or on the cluster at that address,
  whose workers must have ``aisec`` installed (``aisec bench run ... --ray ADDRESS``, or the
  recipe keys ``ray`` and ``workers``).

Every finished cell is appended at once to a :class:`aisec.io.JsonlStore` (when ``store`` is
given), so a stopped grid resumes cell by cell; a stored row counts only under the same
``fingerprint`` (what the cells depend on besides their own arguments: clips, key, seed), so a
changed setup recomputes instead of reusing stale cells. The rows do not depend on the executor
as long as ``fn`` is deterministic in its arguments.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aisec.errors import DependencyError, ParameterError

__all__ = ["Executor", "run_cells"]

Cell = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True)
class Executor:
    """Where a scenario's cells run: ``workers`` local processes, or Ray at ``ray``."""

    workers: int = 1
    ray: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ParameterError("workers", "must be an integer >= 1", self.workers)
        if self.ray is not None and not str(self.ray).strip():
            raise ParameterError("ray", "must be 'local', 'auto' or a cluster address", self.ray)

    def describe(self) -> str:
        if self.ray is not None:
            return f"ray:{self.ray}" + (f" ({self.workers} cpus)" if self.ray == "local" else "")
        return "in-process" if self.workers == 1 else f"{self.workers} processes"


def run_cells(
    fn: Callable[..., dict[str, Any]],
    cells: Sequence[Cell],
    shared: tuple[Any, ...] | Callable[[], tuple[Any, ...]] = (),
    *,
    store: str | os.PathLike[str] | None = None,
    fingerprint: str = "",
    executor: Executor | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """``{cell_id: fn(*shared, *args)}`` for every ``(cell_id, args)`` of ``cells``.

    ``fn`` must return a JSON-able dict and, for processes or Ray, be importable by name (a
    module-level function); ``shared`` (or a function building it, called only if some cell
    still has to run) travels once per worker, not once per cell. Stored rows carry ``id`` and
    ``cell_fingerprint`` beside what ``fn`` returned.
    """
    from aisec.io import JsonlStore

    ids = [c for c, _ in cells]
    if len(set(ids)) != len(ids):
        raise ParameterError("cells", "must have distinct ids", sorted(ids))
    executor = executor or Executor()
    st = (
        JsonlStore(store, key=lambda r: (r.get("id"), r.get("cell_fingerprint"))) if store else None
    )
    done = {k[0]: r for k, r in (st.latest() if st else {}).items() if k[1] == fingerprint}
    out = {c: done[c] for c in ids if c in done}
    todo = [(c, a) for c, a in cells if c not in done]
    if not todo:
        return out
    common = shared() if callable(shared) else tuple(shared)
    if executor.ray is not None:
        stream = _on_ray(executor, fn, common, todo)
    elif executor.workers > 1 and len(todo) > 1:
        stream = _in_processes(executor.workers, fn, common, todo)
    else:
        stream = ((c, fn(*common, *a)) for c, a in todo)
    for j, (c, row) in enumerate(stream):
        if not isinstance(row, dict):
            raise TypeError(f"cell {c}: {getattr(fn, '__name__', fn)} returned a non-dict")
        row = {**row, "id": c, "cell_fingerprint": fingerprint}
        if st is not None:
            st.append([row])
        out[c] = row
        if progress is not None:
            progress((j + 1) / len(todo), c)
    return out


# -- local processes -------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(payload: bytes) -> None:
    import pickle

    _WORKER["fn"], _WORKER["shared"] = pickle.loads(payload)  # noqa: S301 (our own parent)


def _payload(obj: Any) -> bytes:
    """``obj`` for the spawned workers: cloudpickle where installed (it also carries classes
    defined inside functions, e.g. the learned methods' networks), else pickle."""
    try:
        import cloudpickle
    except ImportError:
        import pickle

        return pickle.dumps(obj)
    return cloudpickle.dumps(obj)


def _call_in_worker(cell: str, args: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    return cell, _WORKER["fn"](*_WORKER["shared"], *args)


def _in_processes(
    workers: int, fn: Callable[..., Any], shared: tuple[Any, ...], todo: Sequence[Cell]
) -> Iterator[tuple[str, dict[str, Any]]]:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    with ProcessPoolExecutor(
        max_workers=min(workers, len(todo)),
        mp_context=mp.get_context("spawn"),
        initializer=_init_worker,
        initargs=(_payload((fn, shared)),),
    ) as pool:
        pending = {pool.submit(_call_in_worker, c, a) for c, a in todo}
        try:
            while pending:
                ready, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in ready:
                    yield f.result()
        finally:
            for f in pending:
                f.cancel()


# -- Ray -------------------------------------------------------------------------------------


def _ray_call(fn: Callable[..., Any], cell: str, *args: Any) -> tuple[str, dict[str, Any]]:
    return cell, fn(*args)


def _on_ray(
    ex: Executor, fn: Callable[..., Any], shared: tuple[Any, ...], todo: Sequence[Cell]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Cells as Ray tasks; yields each as it finishes, so the store keeps every finished cell."""
    try:
        import ray
    except ImportError:
        raise DependencyError("ray", "distributed") from None
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if ex.ray == "local":
            ray.init(num_cpus=ex.workers, **kw)
        else:
            ray.init(address=ex.ray, **kw)
        started = True
    try:
        task = ray.remote(num_cpus=1)(_ray_call)
        fn_ref = ray.put(fn)
        refs = [ray.put(x) for x in shared]  # top-level refs: Ray hands tasks the values
        pending = [task.remote(fn_ref, c, *refs, *a) for c, a in todo]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield ray.get(ready[0])
    finally:
        if started:
            ray.shutdown()
