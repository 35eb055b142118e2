"""Off the CPU, proven on a CPU: the training step, validation and decoding on the `meta`
device, with every op watched.

Why meta: it is a real non-CPU device that every PyTorch build has. Its tensors have shapes
and dtypes but no values, so the whole run goes through the same code a GPU would take (the
C kernels are not chosen, engine/fast/native's kernels_for: device != cpu, so the fast
layer's torch ops run, as on CUDA) and three kinds of mistake show up on this CPU-only machine:

  - a CPU/device mix: an op given a tensor on the host beside one on the device (a mask
    built with torch.arange() without device=, a CPU lengths tensor used in arithmetic).
    On a GPU that is an error, or a hidden copy. Meta raises too, and HostReads records it.
    The exceptions are torch's own: packing takes its lengths on the host by design
    (HOST_BY_DESIGN);
  - a host read of a device value: .item(), bool()/int()/float() of a tensor, a boolean
    index or .nonzero() (data-dependent shapes), .cpu() or .tolist(). On a GPU each of those
    makes the host wait for the device (and rules out CUDA graphs); on meta there is nothing
    to read. HostReads sees the aten op (_local_scalar_dense, is_nonzero, item, nonzero,
    masked_select, or a copy from the device to the host), counts it, and answers with a
    stand-in (-1, False, zeros, an empty index) so that the run continues and the count of a
    whole run is complete. A copy to the host with non_blocking (StopCheck's flag, into
    pinned memory on CUDA) does not wait: it is counted apart, as a download;
  - an upload that waits: a copy from the host to the device without non_blocking (on CUDA
    it waits for everything queued), or torch.tensor(..., device=) (a blocking copy inside,
    which the dispatcher does not show: HostReads wraps torch.tensor and torch.as_tensor).
    That the CUDA uploads come from pinned memory is checked apart, with CUDA faked
    (test_uploads_to_cuda_are_pinned_and_non_blocking).

What the counts prove: only tensors on the device are counted (the batch's host copy, the
forcing draw and the lengths may be read freely: they are on the host anyway), so a count
is exactly the number of times a GPU run would wait for the GPU. The data has sentences of
2-7 words, so some batches are padded and the encoder packs them; a copying model (the
default of every --corpus run) is among the models. Training reads at most once per 25
batches (the NaN check; the epoch's end reads its figures once, with the check of its last
batches), validation once, batched evaluation once per batch (its results), and decoding
never: on CUDA its stop check arrives asynchronously (StopCheck, tested with a fake event),
on meta it runs its whole budget.

Not counted: beam search (Seq2Seq.beam, Python lists, read at every step; one sentence at a
time, the probe's: only its mixes are checked) and the watch snapshots (one read each, to
show them).

Across modules by design (engine/train/trainer.py, engine/insight/evaluate.py, engine/model/seq2seq.py, engine/fast/,
engine/model/transfer.py, engine/train/checkpoint.py): it is the GPU-readiness of the training step and
decoding as a whole, so it is not one module's test_<module>.py.
"""

import math
from dataclasses import replace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import engine.train.trainer as trainer_module
from engine.fast.decoder_loop import decoder_loop
from engine.insight.evaluate import evaluate
from engine.model.transfer import StopCheck, download, upload
from engine.train.config import Config
from engine.train.data import UNSEEN_WORDS, PairDataset, Vocab
from engine.train.events import BatchDone
from engine.train.trainer import Trainer, resumed_config
from tests.conftest import decoder_inputs, loop_args

aten = torch.ops.aten
META = torch.device("meta")
SCALAR_READS = {aten._local_scalar_dense.default, aten.item.default, aten.is_nonzero.default}
INDEX_READS = {aten.nonzero.default, aten.masked_select.default}
COPIES = {aten._to_copy.default, aten.copy_.default, aten.to.dtype_layout, aten.to.device}
# torch's packed sequences take their lengths and batch sizes (int64) on the host, by design
HOST_BY_DESIGN = {aten._pack_padded_sequence.default, aten._pad_packed_sequence.default, aten.gru.data}


class HostReads(TorchDispatchMode):
    """Records host reads of device tensors (`reads`), asynchronous copies to the host
    (`downloads`), uploads that wait (`blocking`) and ops mixing devices (`mixes`); see the
    module's docstring. A 0-dim CPU tensor beside device ones is allowed, as on a GPU (a
    Python number arrives at the dispatcher as one)."""

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []
        self.downloads: list[str] = []
        self.blocking: list[str] = []
        self.mixes: list[str] = []
        self.saved = {}

    def __enter__(self):
        for name in ("tensor", "as_tensor"):  # their copy to the device is not dispatched
            make = self.saved[name] = getattr(torch, name)
            setattr(torch, name, self.creating(name, make))
        return super().__enter__()

    def __exit__(self, *exc):
        for name, make in self.saved.items():
            setattr(torch, name, make)
        return super().__exit__(*exc)

    def creating(self, name, make):
        def made(*args, **kwargs):
            device = kwargs.get("device")
            if device is not None and torch.device(device).type != "cpu":
                self.blocking.append(f"torch.{name}(..., device={device})")
            return make(*args, **kwargs)

        return made

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
            if func is aten.copy_.default:
                dst, src = args[0], args[1]
                target, waits = dst.device, not (args[2] if len(args) > 2 else kwargs.get("non_blocking", False))
            else:
                dst, src = None, args[0]
                target, waits = kwargs.get("device"), not kwargs.get("non_blocking", False)
            target = torch.device(target) if target is not None else src.device
            if src.device.type != "cpu" and target.type == "cpu":
                (self.reads if waits else self.downloads).append(f"{func} to the host")
                return dst if dst is not None else torch.zeros(src.shape, dtype=kwargs.get("dtype") or src.dtype)
            if src.device.type == "cpu" and target.type != "cpu" and waits:
                self.blocking.append(f"{func} to the device")
            return func(*args, **kwargs)
        by_design = func in HOST_BY_DESIGN  # lengths and batch sizes (int64) on the host
        on_host = [t for t in tensors if t.device.type == "cpu" and t.dim() > 0]
        if on_device and any(not (by_design and t.dtype == torch.int64) for t in on_host):
            self.mixes.append(f"{func}: {[str(t.device) for t in tensors]}")
        return func(*args, **kwargs)

    def waits(self) -> list[str]:
        """Everything that makes the host wait or mixes devices: empty where all is well."""
        return self.reads + self.blocking + self.mixes


SMALL = dict(
    train_size=240,
    val_size=40,
    test_size=20,
    min_len=2,
    max_len=7,
    embed_dim=8,
    hidden_dim=16,
    batch_size=8,
    device="cpu",
)  # 30 training batches of sentences of 2-7 words: some padded and packed
CONFIGS = {
    "default": Config(**SMALL),  # bidirectional, location-aware, <unk> training, cosine lr
    "copy": Config(**SMALL, copy="on"),  # the copy mechanism: extended vocabularies per batch
    "notebook": Config.notebook(**{**SMALL, "epochs": 2}),  # 2 layers, dropout, constant lr
}
# the default's paths in the quick suite; the others' own paths (copying, two layers and
# dropout) in the full one
NAMES = [pytest.param(n, marks=[] if n == "default" else pytest.mark.slow) for n in CONFIGS]


def meta_trainer(cfg, tmp_path):
    torch.manual_seed(0)
    return Trainer(cfg, tmp_path / "m.pt", device=META)


def padded(batches) -> int:
    """How many of the batches have sentences of different lengths (the encoder packs them)."""
    return sum(int(b.src_len.min()) != int(b.src_len.max()) for b in batches)


# The NaN check looks every 4 batches here (25 in a run: the rule is the same), so an epoch
# of 5 batches reaches it once before its end.
NAN_CHECK_EVERY = 4
EPOCH_BATCHES = NAN_CHECK_EVERY + 1


@pytest.mark.parametrize("name", NAMES)
def test_a_training_epoch_on_a_device_reads_back_once_per_nan_check(name, tmp_path, monkeypatch):
    """Forward, the hand-written backward, clipping and Adam on the device, a whole epoch of
    batches, some packed: no op mixes the host and the device, no upload waits, and the
    device is read once per NAN_CHECK_EVERY batches (the NaN check after that many, the
    epoch's figures at its end: twice in 5 batches)."""
    monkeypatch.setattr(trainer_module, "NAN_CHECK_EVERY", NAN_CHECK_EVERY)
    cfg = replace(CONFIGS[name], train_size=SMALL["batch_size"] * EPOCH_BATCHES)
    t = meta_trainer(cfg, tmp_path)
    assert all(p.device == META for p in t.model.parameters())
    n = t.train_set.num_batches(t.cfg.batch_size)
    assert n == EPOCH_BATCHES and padded(t.train_set.batches(t.cfg.batch_size)) >= 3
    epoch = t.train_epoch(1)
    with HostReads() as watch:
        for _ in range(n):
            ev = next(epoch)
            assert isinstance(ev, BatchDone) and ev.loss.device == META
        with pytest.raises(StopIteration) as end:
            next(epoch)
    assert watch.mixes == [] and watch.blocking == []
    assert len(watch.reads) == math.ceil(n / NAN_CHECK_EVERY), watch.reads  # exactly: the watch sees each one
    assert len(end.value.value.batch_losses) == n  # the epoch's figures came back, in that read
    # the weights and Adam's moments stayed on the device
    assert all(p.device == META for p in t.model.parameters())
    assert all(m.device == META for m in t.optimizer.m + t.optimizer.v)
    assert t.optimizer.t == n


@pytest.mark.parametrize("name", NAMES)
def test_validation_on_a_device_reads_back_once(name, tmp_path):
    t = meta_trainer(CONFIGS[name], tmp_path)
    assert padded(t.val_set.batches(t.cfg.batch_size)) >= 1
    with HostReads() as watch:
        t.validate()
    assert watch.mixes == [] and watch.blocking == []
    assert len(watch.reads) == 1, watch.reads  # the loss and the matches, together, at the end


@pytest.mark.parametrize("name", NAMES)
def test_evaluation_on_a_device_reads_back_once_per_batch(name, tmp_path):
    """Batched greedy decoding (through the reference's steps for a copying model, engine/fast's
    for the others) reads nothing; the evaluation reads each batch's results once. Test
    sentences with unknown words give a copying model extended vocabularies."""
    t = meta_trainer(CONFIGS[name], tmp_path)
    model = t.model.eval()
    sentences = [s[:-1] + [UNSEEN_WORDS[i % 3]] for i, s in enumerate(t.splits.test)]
    ds = PairDataset(sentences, t.vocab, extended=model.copy)
    batches = list(ds.batches(8))
    assert padded(batches) >= 1 and (ds.src_ext is not ds.src) == model.copy

    b = batches[0]
    with HostReads() as watch:
        d = b.to(META)
        out = model.greedy(
            d.src, b.src_len, src_ext=d.source_ext if model.copy else None, n_ext=b.extended_size(len(t.vocab))
        )
    assert out.tokens.device == META and watch.waits() == []
    assert out.tokens.size(1) == 2 * int(b.src_len.max()) + 5  # meta is never asked: the whole budget ran

    with HostReads() as watch:
        result = evaluate(model, t.vocab, sentences, META, batch_size=8)
    assert len(result.results) == len(sentences)
    assert watch.mixes == [] and watch.blocking == []
    assert len(watch.reads) == len(batches), watch.reads


@pytest.mark.parametrize("name", NAMES[::2])
def test_beam_search_on_a_device_mixes_nothing(name, tmp_path):
    """Beam search keeps its hypotheses in Python lists, read back and uploaded again at every
    step (one sentence at a time: the probe's and --beam's evaluation; a search kept on the
    device measured no faster, bench/README.md), but it never mixes host and device tensors."""
    t = meta_trainer(CONFIGS[name], tmp_path)
    model = t.model.eval()
    ds = PairDataset(t.splits.test[:2], t.vocab)
    b = ds.batch(torch.arange(1))
    with HostReads() as watch:
        out = model.beam(b.src.to(META, non_blocking=True), b.src_len, 3)
    assert out.tokens.device == META and watch.mixes == []
    with HostReads() as watch:
        result = evaluate(model, t.vocab, t.splits.test[:2], META, beam=3)
    assert len(result.results) == 2 and watch.mixes == []


def test_uploads_to_cuda_are_pinned_and_non_blocking(monkeypatch):
    """With CUDA as the target (faked: this machine has none), every tensor of a batch goes
    to pinned memory, then to the device with non_blocking; the dataset's index stays on
    the host. Other devices are not pinned (pinning needs CUDA)."""
    pinned, moved = [], []

    def pin_memory(t):
        pinned.append(t.clone())
        return pinned[-1]

    def to(t, device, non_blocking=False):
        moved.append((torch.device(device).type, any(t is p for p in pinned), non_blocking))
        return t

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
    monkeypatch.setattr(torch.Tensor, "to", to)
    ds = PairDataset([["a", "b"], ["c"]], Vocab(["a", "b"]))
    b = ds.batch(torch.arange(2))
    b.to(torch.device("cuda"))
    assert moved == [("cuda", True, True)] * 5  # src, src_len, tgt, src_ext, tgt_ext
    moved.clear()
    upload(torch.arange(3), torch.device("meta"))
    assert moved == [("meta", False, True)]


def test_download_reads_once_and_returns_the_same_bytes():
    tensors = [torch.randn(3, 4), torch.tensor([5, -1]), torch.tensor([True, False, True]), torch.zeros(0)]
    with HostReads() as watch:
        back = download(*[t.to(META) for t in tensors], torch.arange(2))
    assert len(watch.reads) == 1
    assert [(t.shape, t.dtype, t.device.type) for t in back] == [(t.shape, t.dtype, "cpu") for t in tensors] + [
        (torch.Size([2]), torch.long, "cpu")
    ]
    # on a host the bytes: a float32, an int64 and a bool tensor side by side come back bit for bit
    host = download(*tensors)
    assert all(torch.equal(a, b) for a, b in zip(host, tensors))


class FakeEvent:
    """torch.cuda.Event's record/query, arriving after `lag` queries."""

    lag = 2
    made = 0

    def __init__(self):
        FakeEvent.made += 1
        self.queries = 0

    def record(self):
        pass

    def query(self) -> bool:
        self.queries += 1
        return self.queries > self.lag


def test_a_stop_check_on_cuda_never_waits_and_stops_once_the_flag_arrives(monkeypatch):
    """StopCheck's CUDA branch, with CUDA faked: the flag goes to the host by non_blocking
    copies, one in flight at a time, and is read only once its event says it arrived; the
    loop stops at the first arrival that says "all done", never before."""
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(StopCheck, "pinned_flag", staticmethod(lambda: torch.zeros((), dtype=torch.bool)))
    FakeEvent.made = 0
    stop = StopCheck(torch.device("cuda"))
    done_from = 5  # every sentence done after step 5 (0-based)
    stopped_at = next(t for t in range(12) if stop(torch.tensor([t >= done_from, True])))
    # copies leave at steps 0, 3, 6 (each arrives on the third look); the one of step 6 says done
    assert stopped_at == 9 and FakeEvent.made == 3

    # with the flag on the device: copies to the host that do not wait, and no read
    stop, FakeEvent.made = StopCheck(torch.device("cuda")), 0
    with HostReads() as watch:
        assert not any(stop(torch.ones(2, dtype=torch.bool, device=META)) for _ in range(7))
    assert watch.waits() == [] and len(watch.downloads) == FakeEvent.made == 3
    assert StopCheck(META)(torch.ones(2, dtype=torch.bool, device=META)) is False  # never asked: the budget runs
    assert StopCheck(torch.device("cpu"))(torch.tensor([True, True])) is True


def test_a_host_tensor_in_a_device_op_is_caught(tmp_path):
    """The watch itself: a mask built on the host beside device tensors is a mix, a bool()
    of a device tensor a read, an upload without non_blocking (or by torch.tensor) one that
    waits; one with non_blocking, and packing with its host lengths, are neither."""
    x = torch.zeros(2, 3, device=META)
    with HostReads() as watch:
        with pytest.raises(RuntimeError, match="device"):  # meta refuses it too
            x.masked_fill(torch.arange(3)[None, :] < 2, 1.0)
        bool(x.sum() > 0)
        torch.arange(3).to(META)
        torch.tensor([1, 2], device=META)
        torch.arange(3).to(META, non_blocking=True)
        torch.nn.utils.rnn.pack_padded_sequence(x[:, :, None], torch.tensor([3, 2]), batch_first=True)
    assert len(watch.mixes) == 1 and len(watch.reads) == 1 and len(watch.blocking) == 2


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
