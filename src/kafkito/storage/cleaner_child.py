"""The cleaner's child process starts here: `python -m kafkito.storage.cleaner_child`.

Its first act is to lower its own CPU and I/O priority, before it imports anything of the
cleaner: the imports (the protocol schemas, kio) cost the child about 0.5 s of CPU, and run at
the broker's priority they competed with it at the start of every pass (produce p99 1.4-1.6x
idle during a 64 MB pass, with the fsyncs no slower: docs/benchmarks.md). So this module
imports nothing but the standard library; then it hands over to
`kafkito.storage.cleaner_process._main`, which reads the job from stdin.

Also kept out: hypothesis. kio's phantom types import it, when installed, only to register
test strategies (0.18 s here); the child never uses it, and marks it absent as `kafkito broker`
does (broker/loop.skip_test_only_imports).
"""

from __future__ import annotations

import contextlib
import os
import sys

PRIORITY_ENV = "KAFKITO_CLEANER_PRIORITY"
"""The child's scheduling: "idle" (the default), "batch" or "normal" (as the broker)."""

_SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}
_IOPRIO_WHO_PROCESS = 1
_IOPRIO_BEST_EFFORT_LOWEST = (2 << 13) | 7  # class best-effort (2), level 7


def lower_priority(kind: str) -> str:
    """Yield the CPUs and the disk to the broker; returns what was applied.

    A pass is background work: with "idle" the child runs under SCHED_IDLE, which the kernel
    schedules only when no normal thread of any process wants the CPU (CFS weight 3 against
    1,024 for nice 0, so a busy broker loop preempts it at once, and it still progresses on a
    loaded machine). "batch" is SCHED_BATCH at nice 19 (no wake-up preemption of others).
    Its I/O gets the lowest best-effort priority (honoured by the BFQ and mq-deadline
    schedulers), not the idle class: the cleaner fsyncs, and an idle-class writer inside an
    ext4 journal commit would hold the broker's own fsyncs back (priority inversion).
    """
    applied = []
    if kind in ("idle", "batch"):
        with contextlib.suppress(OSError, AttributeError):
            if kind == "idle":
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            else:
                os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
                os.nice(19)
            applied.append(kind)
        number = _SYS_IOPRIO_SET.get(os.uname().machine)
        if sys.platform.startswith("linux") and number is not None:
            import ctypes

            with contextlib.suppress(OSError, AttributeError):
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.syscall(number, _IOPRIO_WHO_PROCESS, 0, _IOPRIO_BEST_EFFORT_LOWEST) == 0:
                    applied.append("io-be7")
    return "+".join(applied) or "normal"


def main() -> None:
    lower_priority(os.environ.get(PRIORITY_ENV, "idle"))
    # broker/loop.skip_test_only_imports does the same, but storage must not import the
    # broker package (tests/unit/test_import_graph.py)
    sys.modules.setdefault("hypothesis", None)  # type: ignore[arg-type]
    from kafkito.storage.cleaner_process import _main

    _main()


if __name__ == "__main__":
    main()
