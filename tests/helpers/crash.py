"""Kill a process at each of its writes in turn: the crash-point harness of tests/*/test_crash*.

`kill_at_every_write(job, ...)` runs in ONE helper process that imports the project once and then
forks a child per crash point: child k counts the writes `job` makes and dies with `os._exit(9)`
(what kill -9 leaves: no cleanup, no flush, no `finally`) just before write k; then the same
command runs again on what it left (`again`), in a fresh fork. A first child runs uncounted to
the end and reports how many writes there are, so every point is covered, not a sample. Forking
keeps a point at a fraction of a second instead of a fresh interpreter's imports (the parent
runs no torch op before forking, and uses one thread), and two points run at a time.

What counts as a write (`what`):
- "store": a Zarr object set or deleted (zarr's LocalStore `set`, `set_if_not_exists`, `delete`,
  `delete_dir`), the cache's own `Location.put` / `delete` (commit records, markers), and a
  rename or tree removal (a store created under a temporary name and renamed into place);
- "files": a file opened for writing, a rename or replace, a removal (file or tree), a mkdir:
  every step by which a plain folder (a run folder) changes.

The job source defines `job(workdir: Path, arm: Callable)`, which calls `arm()` where counting
starts and `arm(False)` where it stops (outside, nothing counts: set-up, earlier training
steps), and `again(workdir)`, the command a user runs after the kill. The test compares each
finished folder with the reference.
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
job, again = namespace["job"], namespace["again"]

def arm(on=True):
    state["armed"] = on

def fork(body):
    """Run `body()` in a child; its exit status: 0 done, 1 failed (reason in a file)."""
    pid = os.fork()
    if pid == 0:
        try:
            body()
        except BaseException as exc:  # a failure is the test's to report, with its reason
            (BASE / f"error_{os.getpid()}.txt").write_text(f"{type(exc).__name__}: {exc}")
            os._exit(1)
        os._exit(0)
    return pid

def killed(k):
    """Kill point k: the job killed before write k, then (uncounted) the same command again."""
    work = BASE / f"killed_at_{k}"
    shutil.copytree(PREPARE, work) if PREPARE != "-" else work.mkdir()
    state["stop_at"] = k
    pid = fork(lambda: job(work, arm))
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    state["armed"], state["stop_at"] = False, 0
    (BASE / f"code_{k}.txt").write_text(str(code))
    if code == 9:
        try:
            again(work)
        except BaseException as exc:
            raise RuntimeError(f"the re-run after kill point {k}: {type(exc).__name__}: {exc}")

reference = BASE / "reference"
def uninterrupted():
    shutil.copytree(PREPARE, reference) if PREPARE != "-" else reference.mkdir()
    job(reference, arm)
    (BASE / "writes.json").write_text(json.dumps(state["count"]))

if os.waitpid(fork(uninterrupted), 0)[1] != 0:
    sys.exit("".join(p.read_text() for p in BASE.glob("error_*.txt")))
writes = json.loads((BASE / "writes.json").read_text())
# two kill points at a time (each in its own process, one thread): the machine has two cores
running, failed = {}, []

def reap():
    pid, status = os.wait()
    k = running.pop(pid)
    if status != 0:
        failed.append(k)

for k in range(1, writes + 1):
    if len(running) == 2:
        reap()
    running[fork(lambda: killed(k))] = k
while running:
    reap()
codes = {k: int((BASE / f"code_{k}.txt").read_text()) for k in range(1, writes + 1)
         if (BASE / f"code_{k}.txt").exists()}
errors = "".join(p.read_text() + "\n" for p in BASE.glob("error_*.txt"))
print(json.dumps({"writes": writes, "codes": codes, "failed": sorted(failed), "errors": errors}))
'''


def kill_at_every_write(job_source: str, base: Path, *, what: str,
                        prepare: Path | None = None) -> tuple[int, list[Path]]:
    """Run `job_source`'s `job` once uncounted (in `base/reference`) and once per write k, killed
    before write k (in `base/killed_at_k`) and then finished by its `again(work)`, the same
    command run again; each work folder starts as a copy of `prepare` (or empty). Returns (the
    number of writes, the killed-then-finished folders in order) for the test to compare with
    the reference; asserts that each kill happened there (exit 9: a job that stops writing
    early cannot pass unnoticed) and that every re-run finished."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "job.py").write_text(job_source)
    done = subprocess.run([sys.executable, "-c", _HARNESS, what, str(base),
                           str(prepare) if prepare else "-", str(base / "job.py")],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    writes = int(report["writes"])
    not_killed = {k: code for k, code in report["codes"].items() if code != 9}
    assert len(report["codes"]) == writes and not not_killed, \
        f"kill points that did not die at their write: {not_killed}; {report['errors']}"
    assert not report["failed"], \
        f"re-runs that failed after kill points {report['failed']}: {report['errors']}"
    return writes, [base / f"killed_at_{k}" for k in range(1, writes + 1)]

def files(folder: Path) -> list[str]:
    """Every file under `folder`, relative: a killed write's leftovers (a temporary that was
    never renamed, a half-created folder) show here when the contents compare equal."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
