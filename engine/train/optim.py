"""Adam, written by hand (Kingma & Ba, 2015), and max-norm gradient clipping.

Both work on all parameters at once with torch._foreach_* ops (a handful of fused kernels
per step instead of a Python loop of small ones), and neither reads a value back to the
host, so a step never waits on the device. On a CPU with the C kernels built, Adam's update
is instead one pass over each parameter's memory (engine/fast/native/fused.c, adam_step): the
same arithmetic in the same order, ~2.4x faster than the foreach passes (measured against
seven; there are nine since the step size became a device tensor, see Adam._device_scalars).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace

import torch

from ..impl import kernels_for


class Adam:
    """m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    The foreach ops follow torch.optim.Adam's order of operations and give its exact weights
    (tests/test_optim.py checks 100 steps); the C kernel agrees with them to float
    rounding (its multiply-adds are fused)."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        use_native: bool = True,
    ):
        self.use_native = use_native  # the C kernel where it applies; False: the foreach ops
        # every parameter, as torch.optim.Adam keeps them: a frozen one (the no-attention
        # control's v) never gets a .grad, so step() skips it, and the state's list still lines
        # up with checkpoints written before it was frozen
        self.params = list(params)
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.t = 0
        # the foreach path's step count and learning rate as 0-dim float64 tensors on the
        # parameters' device (made at its first step): the bias corrections and the step size
        # are computed there, so no step-dependent number is a Python float baked into a launch
        self._t_dev: torch.Tensor | None = None
        self._lr_dev: torch.Tensor | None = None
        self._synced = (None, None)  # (t, lr) the device tensors hold
        self.m = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.v = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        params = [self.params[i] for i in live]
        grads = [self.params[i].grad for i in live]
        m = [self.m[i] for i in live]
        v = [self.v[i] for i in live]
        self.t += 1
        # the C kernel updates each tensor's memory as one flat block: contiguous ones only
        flat = all(t.is_contiguous() for t in (*params, *grads, *m, *v))
        dll = kernels_for(*params, *grads, *m, *v, allow=self.use_native and flat)
        if dll is not None:
            threads = torch.get_num_threads()
            bias1 = 1 - self.beta1**self.t  # host floats: the C kernel takes them as arguments
            bias2_sqrt = math.sqrt(1 - self.beta2**self.t)
            for p, g, m_p, v_p in zip(params, grads, m, v):
                dll.adam_step(
                    threads=threads,
                    n=p.numel(),
                    p=p.data_ptr(),
                    g=g.data_ptr(),
                    m=m_p.data_ptr(),
                    v=v_p.data_ptr(),
                    b1=self.beta1,
                    b2=self.beta2,
                    step_size=-self.lr / bias1,
                    bias2_sqrt=bias2_sqrt,
                    eps=self.eps,
                )
            # the kernel wrote through raw pointers, unseen by autograd: count the writes as an
            # in-place op would, so that whatever keys on a version (autograd's saved tensors)
            # sees new weights
            torch.autograd.graph.increment_version(params)
            return
        step_size, bias2_sqrt = self._device_scalars(params[0].device, params[0].dtype)
        torch._foreach_lerp_(m, grads, 1 - self.beta1)  # m = b1 m + (1-b1) g
        torch._foreach_mul_(v, self.beta2)
        torch._foreach_addcmul_(v, grads, grads, 1 - self.beta2)  # v = b2 v + (1-b2) g^2
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, bias2_sqrt)
        torch._foreach_add_(denom, self.eps)  # sqrt(v_hat) + eps
        # p += step_size * m / denom, in addcdiv's order ((value * m) / denom), with a tensor value
        update = torch._foreach_mul(m, step_size)
        torch._foreach_div_(update, denom)
        torch._foreach_add_(params, update)

    def _device_scalars(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """-lr / (1 - b1^t) and sqrt(1 - b2^t) for step self.t, as 0-dim tensors on the device:
        computed in float64 there (as Python computes them), then rounded to the parameters'
        dtype. The count is advanced on the device; the tensors are (re)made with fill, never
        copied from the host, when they do not hold what the host says (first step, a loaded
        state, a change of lr)."""
        t_was, lr_was = self._synced
        if self._t_dev is None or self._t_dev.device != device or t_was != self.t - 1:
            self._t_dev = torch.full((), float(self.t - 1), dtype=torch.float64, device=device)
        if self._lr_dev is None or self._lr_dev.device != device:
            self._lr_dev = torch.full((), float(self.lr), dtype=torch.float64, device=device)
        elif lr_was != self.lr:
            self._lr_dev.fill_(float(self.lr))
        self._t_dev += 1
        self._synced = (self.t, self.lr)
        bias1 = 1 - torch.pow(self.beta1, self._t_dev)
        bias2_sqrt = torch.sqrt(1 - torch.pow(self.beta2, self._t_dev))
        return (-self._lr_dev / bias1).to(dtype), bias2_sqrt.to(dtype)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict:
        return {
            "lr": self.lr,
            "betas": (self.beta1, self.beta2),
            "eps": self.eps,
            "t": self.t,
            "m": [x.clone() for x in self.m],
            "v": [x.clone() for x in self.v],
        }

    def load_state_dict(self, state: dict) -> None:
        if len(state["m"]) != len(self.params) or len(state["v"]) != len(self.params):
            raise ValueError("optimizer state does not match the model's parameters")
        for buf, saved, p in zip(self.m + self.v, list(state["m"]) + list(state["v"]), self.params + self.params):
            if saved.shape != p.shape:
                raise ValueError(f"optimizer state shape {tuple(saved.shape)} != parameter {tuple(p.shape)}")
            buf.copy_(saved)
        self.lr = float(state["lr"])
        self.beta1, self.beta2 = (float(b) for b in state["betas"])
        self.eps = float(state["eps"])
        self.t = int(state["t"])


@torch.no_grad()
def clip_grad_norm(params: Iterable[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """Scale all gradients so their joint L2 norm is at most max_norm. Returns the norm
    before clipping, as a tensor (reading it would stall the device)."""
    params = list(params)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:  # on the parameters' device, like the norm it stands for
        return torch.zeros((), device=params[0].device if params else None)
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    torch._foreach_mul_(grads, scale)
    return total


def scheduled_lr(base_lr: float, schedule: str, step: int, total_steps: int) -> float:
    """Learning rate for optimiser step `step` (0-based) of a fresh run of `total_steps`
    (LrPlan.fresh says what the schedules are)."""
    return LrPlan.fresh(base_lr, schedule, total_steps).rate(step)


@dataclass(frozen=True)
class LrPlan:
    """The learning rate of every optimiser step of a run, as plain values a checkpoint keeps.

    cosine: a linear warm-up to base_lr over the first warmup_steps, then a cosine from
    decay_from at step decay_start down to min_lr at step total_steps. constant: base_lr at
    every step. A checkpoint records the plan so that a resumed run goes on with the rates
    it was following (`resumed`) instead of recomputing them from a new epoch count."""

    schedule: str
    base_lr: float
    min_lr: float
    warmup_steps: int
    total_steps: int
    decay_start: int
    decay_from: float

    @classmethod
    def fresh(cls, base_lr: float, schedule: str, total_steps: int) -> LrPlan:
        """A new run's plan. cosine: warm-up over the first 5% of steps (Adam's early steps are
        large while its second-moment estimate is young), then a cosine decay from base_lr to
        base_lr / 20, so the last epochs settle instead of bouncing between nearly-right answers."""
        warmup = max(1, int(0.05 * total_steps))
        return cls(schedule, base_lr, base_lr / 20, warmup, total_steps, warmup, base_lr)

    def rate(self, step: int) -> float:
        """The learning rate of optimiser step `step` (0-based)."""
        if self.schedule == "constant":
            return self.base_lr
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        progress = min(1.0, max(0.0, (step - self.decay_start) / max(1, self.total_steps - self.decay_start)))
        return self.min_lr + (self.decay_from - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

    def resumed(self, total_steps: int, step: int, last_lr: float) -> LrPlan:
        """This plan for a run resumed before optimiser step `step` and now `total_steps` long;
        last_lr: the rate step - 1 used. The same length: the same plan, so every rate is the
        uninterrupted run's. Another length (--resume with more epochs, or fewer): the rate
        never rises. A warm-up still under way finishes as planned, then the cosine runs to
        the new end; past the warm-up, the cosine is planned afresh from last_lr at step - 1
        down to min_lr at the new end."""
        if total_steps == self.total_steps:
            return self
        if self.schedule == "constant" or step <= self.decay_start:
            return replace(self, total_steps=total_steps)
        return replace(self, total_steps=total_steps, decay_start=step - 1, decay_from=last_lr)

    def record(self, step: int, lr: float) -> dict:
        """The plan as a checkpoint keeps it, with `step`, the optimiser steps taken, and `lr`,
        the last one's rate, for a reader (resuming takes both from the optimiser's state)."""
        return {**asdict(self), "step": step, "lr": lr}

    @classmethod
    def from_record(cls, record: dict) -> LrPlan:
        """The plan of a checkpoint's record; ValueError, one line, for one that is not."""
        try:
            plan = cls(
                str(record["schedule"]),
                float(record["base_lr"]),
                float(record["min_lr"]),
                int(record["warmup_steps"]),
                int(record["total_steps"]),
                int(record["decay_start"]),
                float(record["decay_from"]),
            )
        except (KeyError, TypeError, ValueError):
            raise ValueError("the checkpoint's learning-rate plan is unreadable") from None
        if plan.schedule not in ("cosine", "constant") or plan.warmup_steps < 1:
            raise ValueError("the checkpoint's learning-rate plan is unreadable")
        return plan
