"""Two "nodes" on one machine: two torchrun agents meeting at a c10d rendezvous on 127.0.0.1.

    procs = two_nodes(["-m", "musilingo", "extract", ...])

This is exactly what two hosts run (`torchrun --nnodes 2 --nproc_per_node 1 --rdzv_backend c10d
--rdzv_endpoint HOST:PORT ...` on each), except that both agents sit on the loopback address:
one of them hosts the rendezvous store, the other joins it; ranks 0 and 1 have LOCAL_RANK 0 and
LOCAL_WORLD_SIZE 1 each, as on separate machines.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(args: list[str], *, timeout: float = 300, env: dict | None = None) -> list:
    """Run `torchrun --nnodes 2 --nproc_per_node 1 ... <args>` as two agents; their results."""
    port = free_port()
    base = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node",
            "1", "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}",
            "--rdzv_id", f"musilingo-test-{port}", "--max_restarts", "0"]
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    procs = [subprocess.Popen(base + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results
