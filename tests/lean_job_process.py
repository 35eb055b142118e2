"""`python -m tests.lean_job_process`: engine/job_process.py's child with the stand-ins of
tests/lean_run.py (figures drawn as 1x1 images in the child, 2 repeated-word sentences a
length), for the tests of a run trained in a child process that check something else."""

from tests.lean_run import stand_in

if __name__ == "__main__":
    stand_in()
    from engine.job_process import serve

    serve()
