"""Logging for the ``host-trainer`` entry points (library modules never configure it).

One line per record on stderr, UTC timestamps, the logger name, then the
message's ``event key=value`` text; systemd and launchd keep stderr.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
_QUIET = ("asyncio", "nats")
"""Libraries whose INFO/DEBUG chatter is noise here: they log at WARNING and up."""


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = logging.Formatter(FORMAT, DATE_FORMAT)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    set_level(level)


def set_level(level: str) -> None:
    """Change the level of a running host (SIGHUP)."""
    value = logging.getLevelName(level.upper())
    logging.getLogger().setLevel(value)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(value, logging.WARNING))
