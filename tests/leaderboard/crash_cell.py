"""A cell's module that kills its own process (tests/leaderboard/test_warm_workers.py)."""

import os
import signal

os.kill(os.getpid(), signal.SIGKILL)
