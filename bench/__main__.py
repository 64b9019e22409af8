"""``make bench``: every benchmark, one after the other, each printing its figures."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
import time

import bench

SKIP = {"__main__"}


def main() -> int:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s %(message)s")
    names = sorted(
        module.name
        for module in pkgutil.iter_modules(bench.__path__)
        if not module.name.startswith("_") and module.name not in SKIP
    )
    only = set(sys.argv[1:])
    for name in names:
        if only and name not in only:
            continue
        print(f"\n=== bench.{name} ===", flush=True)
        began = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        saved, sys.argv = sys.argv, [f"bench.{name}"]
        try:
            module.main()
        finally:
            sys.argv = saved
        print(f"({time.perf_counter() - began:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
