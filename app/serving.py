"""Serving the app: waitress in each of gunicorn's worker processes.

gunicorn manages the processes — binds the port, forks the workers, restarts one that dies,
stops them gracefully — and waitress serves in each: its I/O loop sends responses out of a
buffer (and files handed over as `wsgi.file_wrapper`, such as a spooled export), so a
client reading slowly holds a buffer, not one of the threads that run the app. (gunicorn's
own threaded worker writes each response from its thread: 16 clients reading at 1 KB/s held
all 16 threads of two workers, and the server stopped answering.)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from gunicorn.workers.base import Worker

# Per process. Each connection holds a socket and maybe a spooled file: two descriptors.
CONNECTION_LIMIT = 400
HEARTBEAT = 1.0  # seconds between the I/O loop's signs of life to gunicorn's arbiter


def adjustments(threads: int) -> dict[str, Any]:
    """waitress's settings, the same with one process or several. (Its "task queue depth"
    notes, a warning each time a request waits for a thread, are left out: under a steady
    load that is most requests, and writing them costs the server more than it tells.)"""
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    return {
        "threads": threads,
        "ident": "blockdata",
        "connection_limit": CONNECTION_LIMIT,
        "asyncore_use_poll": True,  # select() stops at 1,024 descriptors
    }


class WaitressWorker(Worker):
    """A gunicorn worker that serves with waitress on the sockets gunicorn bound.

    The I/O loop runs in the main thread; a watcher thread asks it, every HEARTBEAT, to
    tell the arbiter it is alive (so a stuck loop is restarted), and on SIGTERM (or when the
    arbiter is gone) has it stop accepting and close idle keep-alive connections, lets the
    requests and downloads under way finish for up to `graceful_timeout`, then closes the
    rest.
    """

    def run(self) -> None:
        from waitress import wasyncore
        from waitress.server import create_server

        server: Any = create_server(
            self.wsgi, sockets=[s.sock for s in self.sockets], **adjustments(self.cfg.threads)
        )
        channels = server._map  # waitress's socket map: listener, trigger, connections

        def stop_accepting() -> None:
            if server.accepting:
                wasyncore.dispatcher.close(server)  # the listener only, not the trigger

        def close_all() -> None:
            wasyncore.close_all(channels)  # the loop ends when its map is empty

        def close_idle() -> None:
            """Close the connections with neither a request nor output under way (idle
            keep-alives): waiting for their clients would only delay the exit."""
            for channel in list(channels.values()):
                if channel is server or channel is server.trigger:
                    continue
                if not channel.requests and not channel.total_outbufs_len:
                    channel.will_close = True  # the loop closes it

        def watch() -> None:
            while self.alive and self.ppid == os.getppid():
                server.trigger.pull_trigger(self.notify)
                time.sleep(HEARTBEAT)
            server.trigger.pull_trigger(stop_accepting)
            deadline = time.monotonic() + self.cfg.graceful_timeout
            while time.monotonic() < deadline:
                if all(c is server or c is server.trigger for c in list(channels.values())):
                    break
                server.trigger.pull_trigger(close_idle)
                self.notify()
                time.sleep(0.2)
            server.trigger.pull_trigger(close_all)

        threading.Thread(target=watch, name="waitress-watch", daemon=True).start()
        try:
            server.run()  # until close_all, or SIGINT / SIGQUIT (SystemExit)
        finally:
            server.task_dispatcher.shutdown()
