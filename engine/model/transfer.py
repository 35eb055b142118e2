"""Moving tensors between the host and the device without the host waiting for the device.

On a GPU the host queues work and runs ahead; anything that needs a device value on the
host (.item(), bool() of a tensor, .cpu(), .tolist()) makes it wait until the device has
caught up, and a copy to the device from pageable memory without non_blocking waits for
the device's queue too. Three tools keep the training step, validation and decoding free
of such waits (tests/test_device.py counts them):

  upload     a host tensor to the device, non_blocking, from pinned memory on CUDA;
  download   several device tensors to the host in one copy: one wait instead of one each;
  StopCheck  "may the decoding loop stop?" answered from a flag copied back asynchronously.

On a CPU all three cost nothing: reading there never waits.
"""

from __future__ import annotations

import torch


def upload(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """t on `device` without the host waiting: non_blocking, and on CUDA from pinned memory
    (a copy from pageable memory is staged through a buffer and can hold the host)."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def download(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """The tensors on the host, in one device-to-host copy: the bytes of those on the device
    side by side in one buffer, read once, and viewed back as each one's dtype and shape
    (exact: bytes, not values, travel). Host tensors come back as they are."""
    away = [t for t in tensors if t.device.type != "cpu"]
    if not away:
        return list(tensors)
    parts = [t.contiguous().reshape(-1).view(torch.uint8) for t in away]  # each (bytes,)
    host = torch.cat(parts).cpu()  # the one read
    back, at = [], 0
    for t, part in zip(away, parts):
        n = part.numel()
        # a copy of its own bytes: a view as a wider dtype needs an aligned start
        back.append(host[at : at + n].clone().view(t.dtype).view(t.shape))
        at += n
    back.reverse()
    return [t if t.device.type == "cpu" else back.pop() for t in tensors]


class StopCheck:
    """Whether a decoding loop may stop, asked after every step with `done` (a bool tensor on
    the device; all true: nothing left to decode), answered without the host waiting:
      - on a CPU, read at once (free there);
      - on CUDA, the flag travels to pinned host memory by an asynchronous copy marked by an
        event; a later step reads it once the event says it has arrived, and then starts the
        next copy. The loop stops a step or a few after the flag rose, never waiting for it;
      - on any other device (meta, in the tests), never: the loop runs its whole budget.
    Steps after every sentence has finished emit PAD and change no answer."""

    def __init__(self, device: torch.device):
        self.kind = device.type
        self.flag: torch.Tensor | None = None  # pinned host memory the flag arrives in
        self.arrived = None  # the event of the copy in flight, or None

    def __call__(self, done: torch.Tensor) -> bool:
        if self.kind == "cpu":
            return bool(done.all())
        if self.kind != "cuda":
            return False
        if self.arrived is not None:
            if not self.arrived.query():  # still on its way: look again next step
                return False
            self.arrived = None
            if bool(self.flag):  # a host value that has arrived: no wait
                return True
        if self.flag is None:
            self.flag = self.pinned_flag()
        self.flag.copy_(done.all(), non_blocking=True)
        self.arrived = torch.cuda.Event()
        self.arrived.record()
        return False

    @staticmethod
    def pinned_flag() -> torch.Tensor:
        return torch.empty((), dtype=torch.bool, pin_memory=True)
