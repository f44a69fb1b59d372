"""Worker processes that die with their parent (issue 13).

A `kill -9` of the nightly leaves its process-pool workers running (reparented to PID 1, hundreds of MB
each), and with them multiprocessing's resource tracker, which waits for every holder of its pipe. Each
worker therefore runs `die_with_parent` as its initializer: a daemon thread that notices the parent is
gone (the worker's parent id changes on reparenting) and ends the worker at once. A thread rather than
Linux's PR_SET_PDEATHSIG: that signal fires when the *thread* that started the worker ends, and pools
may start workers from a helper thread.
"""

from __future__ import annotations

import os
import threading
import time

#: How often a worker checks that its parent is alive (seconds).
WATCH_INTERVAL = 0.5


def die_with_parent(parent_pid: int) -> None:
    """Process-pool initializer: end this worker as soon as `parent_pid` is no longer its parent."""
    if os.getppid() != parent_pid:  # the parent died while this worker was starting
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(WATCH_INTERVAL)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="zhixiang-parent-watch", daemon=True).start()
