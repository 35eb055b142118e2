"""Data-parallel training over several processes, started by torchrun.

    torchrun --nproc-per-node 2 -m tui --no-ui ...

Without torchrun (no RANK/WORLD_SIZE in the environment) nothing here runs: `current()` is
None and the training loop is the single-process loop, bit for bit.

The scheme. Every rank builds the same data, the same
model and the same *global* batch order from the same seeded generator, draws the same
<unk> masks and teacher-forcing steps on the whole global batch (so every random stream
matches a single process's), then keeps only its rows, `rows[rank::world]`. Its loss is
the sum of its token losses over the GLOBAL batch's token count (known on the host from
the lengths: no communication), so the sum over ranks of the losses and of the gradients
is exactly the single-process mean loss and its gradient, up to float rounding. One
all-reduce (SUM) of one flat bucket holding every gradient and the loss follows the
backward; then clipping and Adam run identically on every rank, so the parameters never
drift apart and there is nothing to broadcast after the first step.

Why not DistributedDataParallel: measured on 2 CPU cores with gloo (bench/ddp.py,
bench/results/ddp-cpu-2cores.json), DDP with the same row split and loss scaling (times the
world size: it averages) gives the same losses to the last bit and the same speed within
noise (hidden 256: 6.39 s an epoch against 6.48): the backward is mostly one hand-written
autograd Function (engine/fast/decoder_loop.py) whose weight gradients all appear at its very
end, so DDP's buckets have nothing to overlap with. DDP would also need every rank to run a
backward each batch (a short last batch leaves a rank without rows: its reducer would wait
for ever), a second all-reduce for the logged loss, and `.module` wherever the model decodes.

Stopping together: each rank's stop request (its signal number, or 0) is all-reduced (MAX)
once per batch over a gloo group (host memory, no device sync even with NCCL), so every rank
stops after the same batch. A rank that dies makes the next collective fail (gloo: the
connection closes), and one that hangs makes it time out (`timeout`): either way the
collective raises PeerLost, one line, instead of waiting forever. One race inside gloo (torch
2.13) turns a death into a timeout: when the peer dies just before this rank's send goes out,
the unfinished write is queued, and closing the connection fails pending receives but not that
queued send, so the collective waits out `timeout` (destroy_process_group and interpreter
exit wait for it too). Measured: about 1 kill in 30 on 2 CPU cores.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch

from ..errors import PeerLost
from .machine import launched  # noqa: F401  distributed.launched: started by torchrun (torch-free, there)

DEFAULT_TIMEOUT_S = 300  # a collective waits at most this long for a stuck peer
FINAL_TIMEOUT = timedelta(hours=24)  # ranks > 0 wait this long for rank 0's evaluation


def _first_line(e: BaseException) -> str:
    """An exception's first line, short enough for a one-line message."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def env_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def env_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


@dataclass
class Group:
    rank: int
    world: int
    local_rank: int
    local_world: int
    backend: str  # nccl on CUDA, gloo on a CPU
    device: torch.device
    timeout_s: float
    _cpu_group: object = None  # gloo: stop flags, checks (never a device sync)
    _final_group: object = None  # gloo with a long timeout: waiting for rank 0's evaluation
    closed: bool = False  # left the group (after a failure of its own, or at the end)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self, batch_size: int) -> str:
        per = -(-batch_size // self.world)
        return (
            f"data-parallel: {self.world} processes ({self.backend}), rank {self.rank}; "
            f"global batch {batch_size}, about {per} sentences per process"
        )

    # -- collectives: every one goes through _collective, so a failure is PeerLost ----------
    def _collective(self, what: str, fn, *args, **kwargs):
        import torch.distributed as dist

        try:
            return fn(*args, **kwargs)
        except (RuntimeError, dist.DistError) as e:  # DistBackendError, DistNetworkError, timeouts
            first = _first_line(e)
            # the group is broken: leave it, so that no later wait (wait_for_main) can block on
            # a stuck peer, and the others still alive fail at once
            shutdown()
            raise PeerLost(
                f"rank {self.rank}: lost another process of this torchrun run during {what} "
                f"({first}); training stopped, the best checkpoint saved before is kept "
                "(continue with --resume CHECKPOINT.last.pt)"
            ) from e

    def shard(self, batch, tokens: int):
        """This rank's rows of a global batch, trimmed to their longest sentence (the model
        takes a batch as wide as its longest row, as PairDataset.batch makes them), and its
        share of the loss's denominator: the rank's loss is (its mean token loss) * share =
        (its token loss sum) / (the global batch's tokens)."""
        from .data import Batch

        rows = slice(self.rank, None, self.world)
        src_len = batch.src_len[rows]  # (b,) on the host
        width = int(src_len.max()) if len(src_len) else 0
        mine = Batch(
            batch.src[rows, :width].contiguous(),
            src_len,  # the C kernels read rows whole
            batch.tgt[rows, :width].contiguous(),
            batch.index[rows],
            batch.source_ext[rows, :width].contiguous(),
            batch.target_ext[rows, :width].contiguous(),
        )
        local = int(src_len.sum())  # target tokens = words + EOS = src_len, on the host
        return mine, local / tokens

    def sum_gradients(self, params: Sequence[torch.nn.Parameter], loss: torch.Tensor) -> torch.Tensor:
        """All-reduce (SUM) every trainable parameter's gradient and the loss in one flat
        bucket; the gradients become views of it (contiguous, as Adam's C kernel wants).
        A rank without rows this batch (a short last batch) adds zeros. Returns the global loss."""
        import torch.distributed as dist

        live = [p for p in params if p.requires_grad]  # the same list on every rank
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in live]
        flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1).to(grads[0].dtype)])
        self._collective("the gradient all-reduce", dist.all_reduce, flat)
        offset = 0
        for p in live:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p)
            offset += n
        return flat[offset]

    def sum_(self, t: torch.Tensor, what: str = "an all-reduce") -> torch.Tensor:
        """In place: the sum over ranks of t (on the training device)."""
        import torch.distributed as dist

        self._collective(what, dist.all_reduce, t)
        return t

    def agree_stop(self, signum: int | None) -> int | None:
        """Every rank's stop request (a signal number, or None) -> the largest, on every rank:
        all stop after the same batch, with the same exit status."""
        import torch.distributed as dist

        t = torch.tensor([signum or 0], dtype=torch.long)
        self._collective("the stop check", dist.all_reduce, t, op=dist.ReduceOp.MAX, group=self._cpu_group)
        return int(t) or None

    def check_same(self, name: str, values: Sequence[int]) -> None:
        """Refuse to train when ranks built different data or models (a node with another
        --corpus file, another version): ValueError with one line."""
        import torch.distributed as dist

        t = torch.tensor(list(values), dtype=torch.long)
        lo, hi = t.clone(), t.clone()
        self._collective("the start check", dist.all_reduce, lo, op=dist.ReduceOp.MIN, group=self._cpu_group)
        self._collective("the start check", dist.all_reduce, hi, op=dist.ReduceOp.MAX, group=self._cpu_group)
        if not torch.equal(lo, hi):
            raise ValueError(
                f"the processes of this run built different {name} "
                f"({lo.tolist()} to {hi.tolist()}): every node needs the same files and flags"
            )

    def broadcast_(self, tensors: Iterable[torch.Tensor]) -> None:
        """Rank 0's values everywhere (the initial weights: identical by seeding, made sure)."""
        import torch.distributed as dist

        for t in tensors:
            self._collective("the weights' broadcast", dist.broadcast, t, src=0)

    def seed_dropout(self) -> None:
        """Ranks other than 0 draw their own dropout masks: reseeded from the (shared, resumed)
        global generator and the rank, so that a run is still repeatable."""
        if self.rank:
            torch.manual_seed(int(torch.randint(2**62, ())) + self.rank)

    def wait_for_main(self) -> None:
        """Ranks > 0 wait here (after training) until rank 0 has evaluated and written
        everything: torchrun tears the whole run down as soon as one process fails, so a rank
        that exits 130 after a stop must not leave before rank 0 is done."""
        import torch.distributed as dist

        if self.closed:
            return
        try:
            dist.barrier(group=self._final_group)
        except (RuntimeError, dist.DistError):
            pass  # rank 0 is gone: its own status (and torchrun's summary) says why


_group: Group | None = None


def current() -> Group | None:
    """The process group this process trains in, or None (one process: nothing changes)."""
    return _group


def is_main() -> bool:
    return _group is None or _group.is_main


def init(device_name: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> Group:
    """Join the run torchrun started (env://): NCCL and cuda:LOCAL_RANK where CUDA is asked
    for or available (`device_name` auto|cuda), else gloo on the CPU. Every collective fails
    (PeerLost) after timeout_s instead of hanging."""
    global _group
    import torch.distributed as dist

    if _group is not None:
        return _group
    if not dist.is_available():
        raise ValueError("this PyTorch build has no torch.distributed; run without torchrun")
    rank, world, local_rank = env_rank(), env_world(), int(os.environ["LOCAL_RANK"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                "use --nproc-per-node up to the GPU count, or --device cpu"
            )
        torch.cuda.set_device(local_rank)  # torch.device("cuda") now means this rank's GPU
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    timeout = timedelta(seconds=timeout_s)
    try:
        dist.init_process_group(backend, timeout=timeout, **({"device_id": device} if cuda else {}))
        cpu_group = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
        final_group = dist.new_group(backend="gloo", timeout=FINAL_TIMEOUT)
    except (RuntimeError, ValueError, dist.DistError) as e:
        first = _first_line(e)
        raise ValueError(f"rank {rank}: could not join the other {world - 1} process(es) ({backend}): {first}") from e
    _group = Group(rank, world, local_rank, local_world, backend, device, timeout_s, cpu_group, final_group)
    return _group


def abandon(e: BaseException) -> None:
    """After an exception on this rank: when the others cannot have seen it too (not a lost
    peer, not the NaN every rank reads from the same summed loss), leave the group, so that
    they fail at once (the connection closes: PeerLost) instead of waiting out the timeout."""
    from ..errors import NonFiniteLoss

    if _group is not None and not isinstance(e, (PeerLost, NonFiniteLoss)):
        shutdown()


def shutdown(forget: bool = False) -> None:
    """Leave the process group. The rank stays known (rank 0 alone still writes) unless
    `forget`: the end of the run, back to one process."""
    global _group
    import torch.distributed as dist

    if _group is not None:
        _group.closed = True
        if dist.is_initialized():
            try:
                dist.destroy_process_group()
            except (RuntimeError, dist.DistError):
                pass
    if forget:
        _group = None


def threads_per_process(default: int) -> int:
    """The default thread count shared out: N processes on one box each take their part of
    its cores (torchrun itself sets OMP_NUM_THREADS=1, which torch.set_num_threads overrides)."""
    from .threads import usable_cores

    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if _group is None else _group.local_world
    return max(1, min(default, usable_cores() // max(1, local)))
