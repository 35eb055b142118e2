"""`python -m tests.lean_run ARGS`: `python -m tui ARGS` with what tests/conftest.py's autouse
fixtures stand in for a test's own process stood in here too: the figures (1x1 images drawn in
this process, no plot process) and the evaluation's repeated-word sentences (2 a length).

For the tests that start a run in a process of its own (signals, threads, torchrun) to check
something other than the figures: the plot process's start-up, matplotlib and seaborn's import
and the drawing are half of such a run's CPU time. The figures themselves are drawn by the tests
marked `figures` and by tests/test_plot_process.py.

`python -m tests.lean_run A... --next B... --next C...` makes several runs, one after another in
this process, each after a line `=== run N` (rank 0's), up to the first that fails: under
torchrun, whose start-up is most of a small run, one launch for them all. They share one process
group: a second init_process_group in a process would read the first one's rendezvous keys from
torchrun's store."""

import sys

import pytest

from tests.conftest import stand_in_figures, stand_in_repeated_words


def stand_in() -> None:
    patch = pytest.MonkeyPatch()  # never undone: the process ends with the run
    stand_in_figures(patch)
    stand_in_repeated_words(patch)


def runs(argv: list[str]) -> int:
    from engine.train import distributed
    from tui.cli import main

    each = [[]]
    for a in argv:
        if a == "--next":
            each.append([])
        else:
            each[-1].append(a)
    leave = distributed.shutdown
    distributed.shutdown = lambda forget=False: None  # the group outlives each run
    try:
        for n, args in enumerate(each, 1):
            if distributed.env_rank() == 0:
                print(f"=== run {n}", flush=True)
            if code := main(args):
                return code
        return 0
    finally:
        distributed.shutdown = leave
        leave(forget=True)


if __name__ == "__main__":
    stand_in()
    if "--next" in sys.argv:
        sys.exit(runs(sys.argv[1:]))
    from tui.cli import entry

    entry()
