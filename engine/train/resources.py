"""What an epoch cost the machine: throughput, the time the run has left, the process's
memory and, on CUDA, the GPU's.

Every figure here is read without waiting for the device: torch.cuda's allocator counters
are host-side bookkeeping (no synchronisation), the process's memory is a question to the
operating system (engine/train/machine.py: psutil, or Linux's /proc without it), and NVML asks the
driver. NVML (the `gpu` extra, nvidia-ml-py) is optional: without it the GPU's
utilisation is None, unknown, as is every GPU figure of a run off CUDA.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .machine import MIB, rss_mib


@dataclass
class Usage:
    """The machine's figures at the end of an epoch; None: not known here."""

    rss_mib: float | None  # the process's resident memory
    gpu_mib: float | None = None  # CUDA memory held by tensors now
    gpu_peak_mib: float | None = None  # the most held during the epoch
    gpu_util: float | None = None  # % of the last sample period a kernel ran (NVML)


def tokens_per_second(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else 0.0


def seconds_left(epoch_seconds: Sequence[float], epochs_left: int) -> float:
    """The mean epoch so far times the epochs still to train (early stopping can end the
    run sooner: it is the most the run has left)."""
    if not epoch_seconds or epochs_left <= 0:
        return 0.0
    return sum(epoch_seconds) / len(epoch_seconds) * epochs_left


class UsageMeter:
    """Reads Usage for one device; start_epoch() starts the epoch's GPU peak afresh."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self._nvml_handle = None
        self._nvml_tried = False

    def start_epoch(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def read(self) -> Usage:
        if not self.cuda:
            return Usage(rss_mib())
        return Usage(
            rss_mib(),
            torch.cuda.memory_allocated(self.device) / MIB,
            torch.cuda.max_memory_allocated(self.device) / MIB,
            self._utilisation(),
        )

    def _utilisation(self) -> float | None:
        handle = self._nvml()
        if handle is None:
            return None
        import pynvml

        try:
            return float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except pynvml.NVMLError:
            return None

    def _nvml(self):
        """This device's NVML handle, looked up once; None without pynvml or without a
        driver that answers."""
        if self._nvml_tried:
            return self._nvml_handle
        self._nvml_tried = True
        try:
            import pynvml
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError:
            return None
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        # NVML counts every GPU, torch only the visible ones (CUDA_VISIBLE_DEVICES): the UUID
        # names the same device to both; the index is the fallback
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        lookups = [(pynvml.nvmlDeviceGetHandleByUUID, f"GPU-{uuid}")] if uuid else []
        for lookup, key in [*lookups, (pynvml.nvmlDeviceGetHandleByIndex, index)]:
            try:
                self._nvml_handle = lookup(key)
                break
            except pynvml.NVMLError:
                continue
        return self._nvml_handle
