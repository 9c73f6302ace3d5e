"""Ray, started only when needed: a local cluster on this machine unless the caller (or ``RAY_ADDRESS``) gave one.

Why apart: every scale-out path needs the same three things — Ray imported with a clear message when the extra
is missing, a cluster (``ray.init(num_cpus=2)`` locally, the caller's own ``ray.init(address=...)`` on a real
one, used unchanged), and Ray Data's progress bars switched on or off.
"""
from __future__ import annotations

import os

from structlm.errors import StructlmError

__all__ = ["WorkerError", "require_ray", "ensure_ray", "actor_cpus", "ordered"]


class WorkerError(StructlmError):
    """Ray workers could not do their part (e.g. load the model); the message carries the worker's reason."""


def require_ray():
    """``ray`` with Ray Data, or an ImportError that says which extra installs it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:  # pragma: no cover - the extra is installed in the test environment
        raise ImportError("structlm.scale needs Ray Data: pip install 'structlm[scale]' (ray[data])") from error
    return ray


def ensure_ray(num_cpus: int | None = 2, progress: bool = True):
    """The running Ray (a cluster the caller joined), else a local one with ``num_cpus`` CPUs.

    The local cluster's workers import this very ``structlm`` (the driver's ``sys.path`` goes to them through
    ``PYTHONPATH``), so a checkout that is not installed works as well as an installed package.
    """
    ray = require_ray()
    if not ray.is_initialized():
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        paths = [here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        env = {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), "OMP_NUM_THREADS": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        kwargs = {} if os.environ.get("RAY_ADDRESS") else {"num_cpus": num_cpus, "include_dashboard": False}
        ray.init(runtime_env={"env_vars": env}, log_to_driver=False, configure_logging=True,
                 logging_level="ERROR", **kwargs)
    import logging

    from ray.data import DataContext

    if not progress:  # quiet: no bars, no per-run execution notes
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = DataContext.get_current()
    context.enable_progress_bars = progress
    context.print_on_execution_start = False
    return ray


def actor_cpus(num_workers: int) -> float:
    """CPUs to ask per actor: one each, or a share of a small local cluster that leaves room for read tasks."""
    ray = require_ray()
    total = float(ray.cluster_resources().get("CPU", 1.0))
    return round(min(1.0, total / (max(1, num_workers) + 1)), 3)


class ordered:
    """Within the block, Ray Data keeps rows in input order (reports index their failures by position)."""

    def __enter__(self):
        from ray.data import DataContext

        self.options = DataContext.get_current().execution_options
        self.before = self.options.preserve_order
        self.options.preserve_order = True
        return self

    def __exit__(self, *exc) -> None:
        self.options.preserve_order = self.before
