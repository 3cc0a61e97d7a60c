"""The garbage collector's share of each Python process's CPU, for the order-path benchmarks.

Put this folder first on ``PYTHONPATH`` of a benchmark (every process it starts inherits it):

    PYTHONPATH=bench/gcprobe GCPROBE_DIR=/tmp/gcstats python bench/rest_load.py ...

Each process writes ``$GCPROBE_DIR/<pid>``, every 2 s and at exit: its command, its CPU since
start, the collector's thread CPU per generation (``gc.callbacks``: the time between a
collection's start and stop, which includes freeing what it found), the collections counted
per generation, the share of the process's CPU, and the objects tracked and frozen.
``GCPROBE_SAVEALL=1`` keeps what each collection frees (``gc.DEBUG_SAVEALL``) and writes its types
to ``<pid>.types``: which objects were cyclic garbage (it inflates the collector's time, so
measure shares without it). Not for production: a measuring tool only.
"""
import atexit
import collections
import gc
import os
import sys
import threading
import time

_dir = os.environ.get("GCPROBE_DIR", "/tmp/gcstats")
_cpu = [0.0, 0.0, 0.0]
_count = [0, 0, 0]
_started = [0.0]
_t0 = time.process_time()
_types: collections.Counter = collections.Counter()


def _callback(phase, info):
    if phase == "start":
        _started[0] = time.thread_time()
    else:
        generation = info["generation"]
        _cpu[generation] += time.thread_time() - _started[0]
        _count[generation] += 1


def _dump():
    if gc.garbage:
        _types.update(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
        gc.garbage.clear()
        with open(f"{_dir}/{os.getpid()}.types", "w") as f:
            f.writelines(f"{n} {kind}\n" for kind, n in _types.most_common(60))
    cpu = time.process_time() - _t0
    with open(f"{_dir}/{os.getpid()}", "w") as f:
        f.write(f"{' '.join(sys.argv[:3])[-48:]}|cpu={cpu:.2f}s|gc_cpu={[round(x, 3) for x in _cpu]}"
                f"|share={sum(_cpu) / max(cpu, 1e-9):.3f}|collections={_count}"
                f"|tracked={len(gc.get_objects())}|frozen={gc.get_freeze_count()}\n")


def _loop():
    while True:
        time.sleep(2)
        _dump()


os.makedirs(_dir, exist_ok=True)
gc.callbacks.append(_callback)
if os.environ.get("GCPROBE_SAVEALL"):
    gc.set_debug(gc.DEBUG_SAVEALL)
threading.Thread(target=_loop, daemon=True, name="gcprobe").start()
atexit.register(_dump)
