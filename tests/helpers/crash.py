"""Kill a process at each of its writes in turn: the crash-point harness of tests/*/test_crash*.

`kill_at_every_write(job, ...)` runs in ONE helper process that imports the project once and then
forks a child per crash point: child k counts the writes `job` makes and dies with `os._exit(9)`
(what kill -9 leaves: no cleanup, no flush, no `finally`) just before write k. A first child
runs uncounted to the end and reports how many writes there are, so every point is covered, not
a sample. Forking keeps a point at a fraction of a second instead of a fresh interpreter's
imports (the parent runs no torch op before forking, and uses one thread).

What counts as a write (`what`):
- "store": a Zarr object set or deleted (zarr's LocalStore `set`, `set_if_not_exists`, `delete`,
  `delete_dir`), the cache's own `Location.put` / `delete` (commit records, markers), and a
  rename or tree removal (a store created under a temporary name and renamed into place);
- "files": a file opened for writing, a rename or replace, a removal (file or tree), a mkdir:
  every step by which a plain folder (a run folder) changes.

The job is the source of a function `job(workdir: Path, arm: Callable)` run in the child; it
calls `arm()` where counting starts and `arm(False)` where it stops (outside, nothing counts:
set-up, earlier training steps). The test then runs the same command again on each killed work
folder and compares.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_HARNESS = r'''
import builtins, io, json, os, shutil, sys
from pathlib import Path

import torch
torch.set_num_threads(1)  # before any op: a forked child must not inherit a thread pool

WHAT, BASE, PREPARE = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
state = {"armed": False, "count": 0, "stop_at": 0}

def tick():
    if state["armed"]:
        state["count"] += 1
        if state["count"] == state["stop_at"]:
            os._exit(9)

def counted(orig):
    def wrapped(*a, **k):
        tick()
        return orig(*a, **k)
    return wrapped

def counted_async(orig):
    async def wrapped(*a, **k):
        tick()
        return await orig(*a, **k)
    return wrapped

if WHAT == "store":
    from zarr.storage import LocalStore
    from musilingo.cache.location import Location
    for name in ("set", "set_if_not_exists", "delete", "delete_dir"):
        if hasattr(LocalStore, name):
            setattr(LocalStore, name, counted_async(getattr(LocalStore, name)))
    for name in ("put", "delete"):
        setattr(Location, name, counted(getattr(Location, name)))
    for module, name in ((os, "replace"), (os, "rename"), (shutil, "rmtree")):
        setattr(module, name, counted(getattr(module, name)))  # a folder published by rename
else:
    real_open = builtins.open

    def open_counted(file, mode="r", *a, **k):
        if any(c in mode for c in "wax+"):
            tick()
        return real_open(file, mode, *a, **k)

    builtins.open = io.open = open_counted
    for module, name in ((os, "replace"), (os, "rename"), (os, "unlink"), (os, "remove"),
                         (os, "mkdir"), (os, "rmdir"), (shutil, "rmtree")):
        setattr(module, name, counted(getattr(module, name)))

namespace = {}
exec(Path(sys.argv[4]).read_text(), namespace)
job = namespace["job"]

def arm(on=True):
    state["armed"] = on

def child(k):
    pid = os.fork()
    if pid == 0:
        state["stop_at"] = k
        work = BASE / (f"killed_at_{k}" if k else "reference")
        try:
            shutil.copytree(PREPARE, work) if PREPARE != "-" else work.mkdir()
            job(work, arm)
        except BaseException as exc:  # a failure is the test's to report, with its reason
            (BASE / f"error_{k}.txt").write_text(f"{type(exc).__name__}: {exc}")
            os._exit(1)
        (BASE / "writes.json").write_text(json.dumps(state["count"])) if not k else None
        os._exit(0)
    return os.waitpid(pid, 0)[1]

status = child(0)
if status != 0:
    sys.exit((BASE / "error_0.txt").read_text())
writes = json.loads((BASE / "writes.json").read_text())
codes = {k: os.waitstatus_to_exitcode(child(k)) for k in range(1, writes + 1)}
print(json.dumps({"writes": writes, "codes": codes}))
'''


def kill_at_every_write(job_source: str, base: Path, *, what: str,
                        prepare: Path | None = None) -> tuple[int, list[Path]]:
    """Run `job_source`'s `job` once uncounted (in `base/reference`) and once per write k, killed
    before write k (in `base/killed_at_k`), each work folder a copy of `prepare` (or empty).
    Returns (the number of writes, the killed work folders in order); asserts that each kill
    happened there (exit 9), so a job that stops writing early cannot pass unnoticed."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "job.py").write_text(job_source)
    done = subprocess.run([sys.executable, "-c", _HARNESS, what, str(base),
                           str(prepare) if prepare else "-", str(base / "job.py")],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    writes = int(report["writes"])
    not_killed = {k: code for k, code in report["codes"].items() if code != 9}
    assert not not_killed, f"children that did not die at their write: {not_killed} " + \
        "".join((base / f"error_{k}.txt").read_text() for k in not_killed
                if (base / f"error_{k}.txt").exists())
    return writes, [base / f"killed_at_{k}" for k in range(1, writes + 1)]


def files(folder: Path) -> list[str]:
    """Every file under `folder`, relative: a killed write's leftovers (a temporary that was
    never renamed, a half-created folder) show here when the contents compare equal."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
