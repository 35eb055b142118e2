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

import torch

from .fast import native


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
        dll = native.kernels_for(*params, *grads, *m, *v, allow=self.use_native and flat)
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
    """Learning rate for optimiser step `step` (0-based) of `total_steps`.
    cosine: linear warm-up over the first 5% of steps (Adam's early steps are large while its
    second-moment estimate is young), then a cosine decay to base_lr / 20, so the last epochs
    settle instead of bouncing between nearly-right answers."""
    if schedule == "constant":
        return base_lr
    warmup = max(1, int(0.05 * total_steps))
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    floor = base_lr / 20
    return floor + (base_lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
