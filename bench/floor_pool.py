"""N floor workers under the engine's own supervisor, so a multi-process run compares like with
like: ``python bench/floor_pool.py N``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.worker_pool import WorkerPool  # noqa: E402

if __name__ == "__main__":
    floor_worker = str(Path(__file__).resolve().parent / "floor_worker.py")
    sys.exit(WorkerPool(int(sys.argv[1]), command=(floor_worker,)).run())
