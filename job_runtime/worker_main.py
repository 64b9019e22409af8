"""Entry point of a worker process: ``python -m job_runtime.worker_main FD``.

Kept apart from :mod:`job_runtime.worker_process` so that the module run as
``__main__`` is never one the package has already imported.
"""

import os
import signal
import sys
from multiprocessing.connection import Connection

from job_runtime.worker_process import run_assignment

# The parent decides when a worker ends; a Ctrl-C in its terminal is for the parent.
signal.signal(signal.SIGINT, signal.SIG_IGN)
# Training yields the CPU to the service beside it (its endpoints, the backend
# app in a container). Measured: at niceness 5 a CPU-bound pair of jobs put
# a 4 ms p99 on the host's status replies, at 15 about 1 ms; a GPU job barely
# notices, since the CPU only feeds the device.
os.nice(int(os.environ.get("TRAINING_WORKER_NICENESS", "15")))
run_assignment(Connection(int(sys.argv[1])))
