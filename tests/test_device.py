"""Off the CPU, proven on a CPU: the training step, validation and decoding on the `meta`
device, with every op watched.

Why meta: it is a real non-CPU device that every PyTorch build has. Its tensors have shapes
and dtypes but no values, so the whole run goes through the same code a GPU would take (the
C kernels are not chosen, engine/fast/native's kernels_for: device != cpu) and two kinds of
mistake show up on this CPU-only machine:

  - a CPU/device mix: an op given a tensor on the host beside one on the device (a mask
    built with torch.arange() without device=, a CPU lengths tensor used in arithmetic).
    On a GPU that is an error, or a hidden copy. Meta raises too, and HostReads records it;
  - a host read of a device value: .item(), bool()/int()/float() of a tensor, a boolean
    index or .nonzero() (data-dependent shapes), .cpu() or .tolist(). On a GPU each of those
    makes the host wait for the device (and rules out CUDA graphs); on meta there is nothing
    to read. HostReads sees the aten op (_local_scalar_dense, is_nonzero, item, nonzero,
    masked_select, or a copy from the device to the host), counts it, and answers with a
    stand-in (-1, False, zeros, an empty index) so that the run continues and the count of a
    whole run is complete.

What the counts prove: only tensors on the device are counted (the batch's host copy, the
forcing draw and the lengths may be read freely: they are on the host anyway), so a count
is exactly the number of times a GPU run would wait for the GPU. Training must read at most
once per 25 batches (the NaN check), validation once at its end, greedy decoding once per
Seq2Seq.CHECK_EVERY steps, beam search as often plus once for the answer's length.

One limit of meta: torch's packed sequences have no meta kernel, so the data here has one
length (no padding, the encoder's unpacked path, which is what most batches take since they
are grouped by length). The packed path is given the host lengths (Encoder.forward), which
tests/test_model.py's padding tests run on the CPU.

Across modules by design (engine/train.py, engine/evaluate.py, engine/model.py, engine/fast/,
engine/checkpoint.py): it is the GPU-readiness of the training step and decoding as a whole,
so it is not one module's test_<module>.py.
"""

from dataclasses import replace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from engine.checkpoint import load_model
from engine.config import Config
from engine.data import PairDataset
from engine.evaluate import evaluate
from engine.fast.decoder_loop import decoder_loop
from engine.train import BatchDone, Trainer, resumed_config
from tests.conftest import decoder_inputs, loop_args

aten = torch.ops.aten
META = torch.device("meta")
SCALAR_READS = {aten._local_scalar_dense.default, aten.item.default, aten.is_nonzero.default}
INDEX_READS = {aten.nonzero.default, aten.masked_select.default}
COPIES = {aten._to_copy.default, aten.copy_.default, aten.to.dtype_layout, aten.to.device}


class HostReads(TorchDispatchMode):
    """Records host reads of device tensors (`reads`) and ops mixing devices (`mixes`); see
    the module's docstring. A 0-dim CPU tensor beside device ones is allowed, as on a GPU (a
    Python number arrives at the dispatcher as one)."""

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []
        self.mixes: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        on_device = [t for t in tensors if t.device.type != "cpu"]
        if func in SCALAR_READS and on_device:
            self.reads.append(str(func))
            t = args[0]
            return False if t.dtype == torch.bool else -1 if not t.is_floating_point() else 0.0
        if func in INDEX_READS and on_device:
            self.reads.append(str(func))
            return torch.zeros(0, args[0].dim(), dtype=torch.long, device=args[0].device)
        if func in COPIES:
            target = kwargs.get("device")
            if func is aten.copy_.default:
                target = args[0].device
            src = args[1] if func is aten.copy_.default else args[0]
            if src.device.type != "cpu" and target is not None and torch.device(target).type == "cpu":
                self.reads.append(f"{func} to the host")
                return torch.zeros(src.shape, dtype=kwargs.get("dtype") or src.dtype)
            return func(*args, **kwargs)
        if on_device and any(t.device.type == "cpu" and t.dim() > 0 for t in tensors):
            self.mixes.append(f"{func}: {[str(t.device) for t in tensors]}")
        return func(*args, **kwargs)


SMALL = dict(
    train_size=200,
    val_size=40,
    test_size=20,
    min_len=4,
    max_len=4,
    embed_dim=8,
    hidden_dim=16,
    batch_size=8,
    device="cpu",
)  # 25 batches of one length
CONFIGS = {
    "default": Config(**SMALL),  # bidirectional, location-aware, <unk> training, cosine lr
    "notebook": Config.notebook(**{**SMALL, "epochs": 2}),  # 2 layers, dropout, constant lr
}


def meta_trainer(cfg, tmp_path):
    torch.manual_seed(0)
    return Trainer(cfg, tmp_path / "m.pt", device=META)


@pytest.mark.parametrize("name", CONFIGS)
def test_training_on_a_device_reads_back_once_per_25_batches(name, tmp_path):
    """Forward, the hand-written backward, clipping and Adam on the device, 25 batches: no
    op mixes the host and the device, and the device is read once (the NaN check at batch 25)."""
    t = meta_trainer(CONFIGS[name], tmp_path)
    assert all(p.device == META for p in t.model.parameters())
    n = t.train_set.num_batches(t.cfg.batch_size)
    assert n == 25
    epoch = t.train_epoch(1)
    with HostReads() as watch:
        for _ in range(n):
            ev = next(epoch)
            assert isinstance(ev, BatchDone) and ev.loss.device == META
    assert watch.mixes == []
    assert len(watch.reads) == n // 25, watch.reads  # <= one per 25; exactly: the watch sees it
    # the weights and Adam's moments stayed on the device
    assert all(p.device == META for p in t.model.parameters())
    assert all(m.device == META for m in t.optimizer.m + t.optimizer.v)
    assert t.optimizer.t == n


@pytest.mark.parametrize("name", CONFIGS)
def test_validation_and_decoding_on_a_device(name, tmp_path):
    t = meta_trainer(CONFIGS[name], tmp_path)
    with HostReads() as watch:
        t.validate()
    assert watch.mixes == []
    assert len(watch.reads) == 2, watch.reads  # the loss and the matches, once, at the end

    model, ds = t.model.eval(), PairDataset(t.splits.test, t.vocab)
    b = ds.batch(torch.arange(len(ds)))
    with HostReads() as watch:
        out = model.greedy(b.src.to(META), b.src_len)
    steps = out.tokens.size(1)
    assert out.tokens.device == META and watch.mixes == []
    assert steps == 2 * 5 + 5  # the stand-in never says "all done": the whole budget ran
    assert len(watch.reads) == steps // model.CHECK_EVERY, watch.reads

    with HostReads() as watch:  # the evaluation pipeline: decode, then read the results once
        result = evaluate(model, t.vocab, t.splits.test[:3], META)
    assert watch.mixes == [] and len(result.results) == 3

    with HostReads() as watch:
        out = model.beam(b.src[:1].to(META), b.src_len[:1], 3)
    assert out.tokens.device == META and watch.mixes == []
    assert len(watch.reads) == steps // model.CHECK_EVERY + 1, watch.reads  # "stopped?", then the length


@pytest.mark.parametrize("k,alpha", [(1, 1.0), (2, 1.0), (4, 1.0), (3, 0.6)])
def test_beam_on_the_device_equals_the_reference_beam(trained_checkpoint, k, alpha):
    """Seq2Seq.beam (fixed width, on the device) against the reference's Python-list beam
    (Seq2Seq.beam_reference): the same words, the same attention, on sentences of the
    training lengths, longer ones, and unknown words."""
    loaded = load_model(trained_checkpoint)
    model, vocab = loaded.model, loaded.vocab
    for text in [
        "the cat sat",
        "big red car on the mat",
        "dog " * 4,
        "the zebra sat on a purple mat today",
        "one two three four five six seven eight nine ten eleven twelve",
    ]:
        ds = PairDataset([text.split()], vocab)
        ref = model.beam_reference(ds.src, ds.src_len, k, alpha)
        out = model.beam(ds.src, ds.src_len, k, alpha)
        assert out.tokens.tolist() == ref.tokens.tolist(), text
        assert out.length.tolist() == ref.length.tolist()
        torch.testing.assert_close(out.attention, ref.attention, atol=1e-5, rtol=1e-4)


def test_a_host_tensor_in_a_device_op_is_caught(tmp_path):
    """The watch itself: a mask built on the host beside device tensors is a mix, a
    bool() of a device tensor a read."""
    x = torch.zeros(2, 3, device=META)
    with HostReads() as watch:
        with pytest.raises(RuntimeError, match="device"):  # meta refuses it too
            x.masked_fill(torch.arange(3)[None, :] < 2, 1.0)
        bool(x.sum() > 0)
    assert len(watch.mixes) == 1 and len(watch.reads) == 1


def test_teacher_forcing_by_selection_equals_branching():
    """The loop's device form (LoopSpec.select: every step computes the model's guess and
    torch.where picks) against its CPU form (Python branches on the host forcing pattern):
    the same outputs and gradients, in float64."""
    results = []
    for select in (False, True):
        spec, tgt_in, drop_emb, drop_between, mask, grads, out, lower, leaves = decoder_inputs(L=2, loc=3)
        spec = replace(spec, select=select)
        g = list(grads)
        g[3] = torch.cat([torch.zeros_like(g[3][:1]), g[3]])  # the embedding's PAD row
        states, contexts, attn, _ = decoder_loop(spec, loop_args(tgt_in, drop_emb, drop_between, mask, g, out, lower))
        (states.square().sum() + contexts.sum()).backward()
        results.append([states, contexts, attn] + [leaf.grad for leaf in leaves])
    for a, b in zip(*results):
        torch.testing.assert_close(a.detach(), b.detach())


def test_resume_keeps_a_cpu_run_on_the_cpu_unless_asked():
    payload = {"config": Config(device="cpu").to_dict()}
    assert resumed_config(payload, None, "auto").device == "cpu"
    assert resumed_config(payload, None, None).device == "cpu"
    assert resumed_config(payload, None, "cuda").device == "cuda"
    gpu = {"config": Config(device="cuda").to_dict()}
    assert resumed_config(gpu, None, "auto").device == "auto"  # a GPU run where there is none
    assert resumed_config(gpu, None, "cpu").device == "cpu"


def test_cuda_random_state_is_saved_and_restored(tmp_path, monkeypatch):
    """With CUDA in use, the checkpoint carries CUDA's generators and a resume restores them
    after manual_seed (which resets them): dropout masks on a GPU continue as if never
    stopped. CUDA is simulated here (this machine has none)."""
    cfg = Config(**{**SMALL, "train_size": 40, "epochs": 1})
    states = [torch.arange(16, dtype=torch.uint8), torch.arange(16, dtype=torch.uint8) + 1]
    restored = {}
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: states)
    payload = Trainer(cfg, tmp_path / "a.pt").payload()
    assert [torch.equal(a, b) for a, b in zip(payload["rng"]["cuda"], states)] == [True, True]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # fewer devices now: those there
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, i: restored.__setitem__(i, s))
    monkeypatch.setattr(torch, "manual_seed", lambda seed: restored.clear() or torch.random.manual_seed(seed))
    Trainer.resume(payload, tmp_path / "b.pt", epochs=2)
    assert list(restored) == [0] and torch.equal(restored[0], states[0])
