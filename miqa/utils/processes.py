"""Worker processes that stop when the process that started them dies."""
import multiprocessing as mp
import os
import sys
import threading
import time


def exit_with_parent(what: str = 'worker', poll_s: float = 1.0) -> None:
    """End this process (``os._exit(1)``) as soon as its parent is gone, from a daemon thread.

    Without this, a ``kill -9`` of a parent leaves its children running: database-builder pool
    workers that finish their source and keep writing for ~20 s (racing a rerun), torchrun
    workers that keep training after their agent died. A multiprocessing child (fork, spawn,
    forkserver) waits on its parent's sentinel and stops at once; any other process (a torchrun
    worker, whose parent is the elastic agent) polls ``os.getppid()`` every ``poll_s`` seconds,
    which changes when the parent dies and the process is re-parented. Files written through
    :func:`miqa.utils.io.atomic_write_bytes` are whole or absent after such an exit.
    """
    parent = mp.parent_process()
    if parent is not None:
        wait = parent.join
    else:
        ppid = os.getppid()
        if ppid <= 1:  # already orphaned, or a child of init: nothing to watch
            return

        def wait() -> None:
            while os.getppid() == ppid:
                time.sleep(poll_s)

    def watch() -> None:
        wait()
        sys.stderr.write(f'miqa: the parent of {what} {os.getpid()} is gone; stopping\n')
        sys.stderr.flush()
        os._exit(1)

    threading.Thread(target=watch, name='miqa-exit-with-parent', daemon=True).start()
