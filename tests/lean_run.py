"""`python -m tests.lean_run ARGS`: `python -m tui ARGS` with what tests/conftest.py's autouse
fixtures stand in for a test's own process stood in here too: the figures (1x1 images drawn in
this process, no plot process) and the evaluation's repeated-word sentences (2 a length).

For the tests that start a run in a process of its own (signals, threads, torchrun) to check
something other than the figures: the plot process's start-up, matplotlib and seaborn's import
and the drawing are half of such a run's CPU time. The figures themselves are drawn by the tests
marked `figures` and by tests/test_plot_process.py."""

import pytest

from tests.conftest import stand_in_figures, stand_in_repeated_words

if __name__ == "__main__":
    patch = pytest.MonkeyPatch()  # never undone: the process ends with the run
    stand_in_figures(patch)
    stand_in_repeated_words(patch)
    from tui.cli import entry

    entry()
