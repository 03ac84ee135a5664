"""Liveness of a service that runs as several worker processes under one BentoML process manager.

Inside a container BentoML does not restart a worker that dies (``respawn=not
running_inside_container()``): the others keep serving at reduced capacity, and nothing says so.
Each worker of the one-process topology therefore counts its siblings (the manager's children
started with its own command line, bar ``--worker-id``) and reports itself not alive once fewer
run than it has seen, so the kubelet's liveness probe restarts the pod.
"""

import psutil

WORKER_ID = "--worker-id"


def without_worker_id(command: list[str]) -> list[str]:
    """A worker's command line without its ``--worker-id N``: the same for all its siblings."""
    if WORKER_ID not in command:
        return command
    at = command.index(WORKER_ID)
    return command[:at] + command[at + 2 :]


class Siblings:
    """A worker and its siblings; ``all_running()`` is False once one of them has gone."""

    def __init__(self, worker: psutil.Process | None = None) -> None:
        self.worker = worker or psutil.Process()
        self.shape = without_worker_id(self.worker.cmdline())
        self.most = 0  # the most seen running at once: the manager starts them all together
        self.all_running()

    def all_running(self) -> bool:
        running = len(self.running())
        self.most = max(self.most, running)
        return running >= self.most

    def other_pids(self) -> list[int]:
        """The process ids of the siblings running now, this worker's own left out."""
        return [process.pid for process in self.running() if process.pid != self.worker.pid]

    def running(self) -> list[psutil.Process]:
        """This worker and its siblings running now (just itself when it has no manager)."""
        manager = self.worker.parent()
        return [self.worker] if manager is None else list(filter(self.is_sibling, manager.children()))

    def is_sibling(self, process: psutil.Process) -> bool:
        try:
            same = without_worker_id(process.cmdline()) == self.shape
            return same and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:  # gone since the manager listed it
            return False
