"""The training loop, shared by the terminal app and the headless run.

`Trainer.run()` is a generator: it yields a `BatchDone` after every batch and an `EpochDone`
after every epoch. The caller (engine/job.py, the one run both faces consume) decides what
to do with them and stops training simply by no longer iterating: the best model is
already on disk, since it is saved the moment validation improves.

Under torchrun (engine/train/distributed.py) each rank trains on its rows of every global batch and
the gradients are summed across ranks after the backward; the hooks are marked `dp`. Without
torchrun `dp` is None and those lines do nothing.

A batch's loss travels as a detached 0-dim tensor: reading it is the consumer's choice (the
app reads a few per second for its chart); the epoch's losses are read once, at its end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import NonFiniteLoss
from ..impl import build_model
from ..insight.exact_match import exact_match_batch
from ..insight.watch import first_epoch_batches
from ..insight.watch import take as take_snapshot
from ..model.copy import extended_size
from ..model.transfer import download, upload
from ..runs.folders import last_path
from . import distributed
from .checkpoint import FORMAT, save_atomic
from .config import Config
from .data import PAD, UNK, Batch, PairDataset, Splits, Vocab, joined_sentences, repeated_word_rewrites, splits_for
from .events import BatchDone, EpochDone, Snapshot
from .optim import Adam, LrPlan, clip_grad_norm
from .resources import UsageMeter, seconds_left, tokens_per_second

# On a GPU the NaN check waits for the device, so the loop reads it once per this many batches.
NAN_CHECK_EVERY = 25


@dataclass
class EpochTrainStats:
    loss: float  # mean training loss over the epoch's batches
    grad_norm: float  # mean pre-clipping gradient norm
    grad_norm_max: float
    tokens: int  # target tokens trained on
    batch_losses: list[float]


@dataclass
class Validation:
    loss: float
    exact_match: float
    by_length: dict[int, list[int]]  # words -> [correct, sentences]


def resumed_config(payload: dict, epochs: int | None = None, device_name: str | None = None) -> Config:
    """The configuration a resumed run trains with: the checkpoint's, with `epochs` (the
    command line's, when given) and the device the user asked for now: cpu or cuda wins,
    "auto" (or nothing) keeps a CPU run on the CPU (so it continues exactly where there is a
    GPU too) and lets any other run use CUDA where there is one."""
    cfg = payload["config"]
    device = device_name if device_name in ("cpu", "cuda") else "cpu" if cfg.get("device") == "cpu" else "auto"
    return Config.from_dict({**cfg, **({"epochs": epochs} if epochs else {}), "device": device})


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA device")
    return torch.device(name)


def masked_loss(scores: torch.Tensor, tgt: torch.Tensor, log_probs: bool = False) -> torch.Tensor:
    """Mean cross-entropy over real target tokens; PAD positions give zero loss and gradient.
    scores (..., V): logits, or with log_probs log-probabilities already (a copy model's mixture,
    which sums to 1: its cross-entropy is the negative log-likelihood itself, and a softmax over
    it again would add two passes over tokens x vocabulary each way for a term that is 0)."""
    flat, target = scores.reshape(-1, scores.size(-1)), tgt.reshape(-1)
    if log_probs:
        return F.nll_loss(flat, target, ignore_index=PAD)
    return F.cross_entropy(flat, target, ignore_index=PAD)


def with_unknown_words(
    batch: Batch, rate: float, rng: torch.Generator, copy_from: int = 0, whole: float = 0.0, spans: float = 0.0
) -> Batch:
    """Show a random share of the words as <unk>, in the source and at the mirrored place in
    the target, so the model learns to emit <unk> where an unknown word sits (and the
    decoder's <unk> replacement can then copy the real word).

    copy_from: the vocabulary's size, for a model that copies: a hidden word is then an
    unknown word as a test sentence's are, <unk> to the encoder and a fresh extended id
    (engine/model/copy.py) that the target asks the model to copy.

    whole: the share of sentences with every word hidden (drawn only when above 0, so that a
    run without it draws the same numbers as before it existed).

    spans: the share of sentences with a run of consecutive words hidden, its length drawn
    uniformly from 1 to every word and its place uniformly among those that fit (drawn only
    when above 0, as whole)."""
    words = batch.src_len - 1  # (B,) words per sentence, EOS excluded
    S = batch.src.size(1)
    pos = torch.arange(S)
    is_word = pos[None, :] < words[:, None]  # (B, S)
    every = torch.rand(batch.src.size(0), generator=rng) < whole if whole > 0 else None  # (B,)
    hide = torch.rand(batch.src.shape, generator=rng) < rate  # (B, S)
    if every is not None:
        hide |= every[:, None]  # every word of those sentences
    if spans > 0:
        hide |= unknown_spans(words, S, spans, rng)
    hide &= is_word
    mirror = (words[:, None] - 1 - pos[None, :]).clamp(min=0)  # target step t reads source n-1-t
    hide_tgt = hide.gather(1, mirror) & is_word
    src, tgt = batch.src.masked_fill(hide, UNK), batch.tgt.masked_fill(hide_tgt, UNK)
    if not copy_from:
        return Batch(src, batch.src_len, tgt, batch.index)
    first_free = extended_size(copy_from, batch.source_ext)
    src_ext = torch.where(hide, first_free + pos[None, :], batch.source_ext)  # (B, S) one id per hidden place
    tgt_ext = torch.where(hide_tgt, src_ext.gather(1, mirror), batch.target_ext)  # (B, T)
    return Batch(src, batch.src_len, tgt, batch.index, src_ext, tgt_ext)


def unknown_spans(words: torch.Tensor, S: int, share: float, rng: torch.Generator) -> torch.Tensor:
    """(B, S) True on one run of consecutive words in a share of the sentences: its length
    uniform in 1..n for n words, its start uniform in 0..n - length. words (B,) >= 1"""
    B = words.size(0)
    chosen = torch.rand(B, generator=rng) < share  # (B,)
    length = (torch.rand(B, generator=rng) * words).long().clamp(max=words - 1) + 1  # (B,) 1..n
    room = words - length + 1  # (B,) the starts that fit
    start = (torch.rand(B, generator=rng) * room).long().clamp(max=room - 1)  # (B,)
    pos = torch.arange(S)[None, :]
    return chosen[:, None] & (pos >= start[:, None]) & (pos < (start + length)[:, None])


class Trainer:
    def __init__(
        self, cfg: Config, checkpoint_path: str | Path, splits: Splits | None = None, device: torch.device | None = None
    ):
        cfg.validate()
        self.cfg = cfg
        self.device = device or resolve_device(cfg.device)
        self.checkpoint_path = Path(checkpoint_path)
        torch.manual_seed(cfg.seed)
        self.corpus_stats = None
        if splits is None:
            splits, self.corpus_stats = splits_for(cfg)
        self.splits = splits
        self.vocab = Vocab.build(self.splits.train, cfg.word_min_freq, cfg.max_vocab)  # the text's own counts
        self.joined = joined_sentences(
            self.splits.train, cfg.joined_count(len(self.splits.train)), cfg.join_len, cfg.seed
        )
        training, self.rewritten = repeated_word_rewrites(self.splits.train + self.joined, cfg.repeated_share, cfg.seed)
        self.train_set = PairDataset(training, self.vocab, extended=cfg.copy_on)
        # every word at its own id (extended ids for unknown words), as exact match reads them
        self.val_set = PairDataset(self.splits.val, self.vocab, extended=True)
        self.model = build_model(len(self.vocab), cfg).to(self.device)
        self.optimizer = Adam(self.model.parameters(), lr=cfg.lr)
        self.lr_plan = LrPlan.fresh(cfg.lr, cfg.lr_schedule, cfg.epochs * self.train_set.num_batches(cfg.batch_size))
        self.rng = torch.Generator().manual_seed(cfg.seed + 1)  # batch order, teacher forcing
        self.history: list[dict] = []
        self.best_val_loss = math.inf
        self.best_epoch: int | None = None
        self.run_record: dict | None = None  # where this run's files live (engine/runs/folders.py)
        self.watch: list[list[str]] = []  # sentences decoded as it learns (engine/insight/watch.py)
        self.snapshots: list[Snapshot] = []

    # -- one epoch of training, read top to bottom ------------------------------------------
    def train_epoch(self, epoch: int) -> Generator[BatchDone, None, EpochTrainStats]:
        """Yields after every batch; returns the epoch's statistics (`yield from` gives them)."""
        cfg, model, dp = self.cfg, self.model, distributed.current()
        model.train()
        n = self.train_set.num_batches(cfg.batch_size)
        loss_sum = torch.zeros((), device=self.device)
        norm_sum = torch.zeros((), device=self.device)
        norm_max = torch.zeros((), device=self.device)
        first_bad = torch.zeros((), dtype=torch.long, device=self.device)  # the first bad batch (1-based); 0: none
        watch_marks = first_epoch_batches(n) if self.watching else set()
        losses: list[torch.Tensor] = []  # stacked and read once, at the end of the epoch
        tokens = 0
        for i, batch in enumerate(self.train_set.batches(cfg.batch_size, shuffle=True, generator=self.rng)):
            if cfg.unk_rate:
                copy_from = len(self.vocab) if model.copy else 0
                batch = with_unknown_words(batch, cfg.unk_rate, self.rng, copy_from, cfg.unk_sentences, cfg.span_share)
            # drawn on the host; the model reads it there on a CPU, uploads it elsewhere
            forcing = torch.rand(batch.tgt.size(1), generator=self.rng) < cfg.teacher_forcing  # (T,)
            batch_tokens = int(batch.src_len.sum())  # the CPU copy: no device sync
            tokens += batch_tokens
            if dp:  # every rank drew the same masks above for the whole batch; keep its rows
                batch, share = dp.shard(batch, batch_tokens)
            b = batch.to(self.device)
            self.optimizer.zero_grad()
            if len(batch.index):  # a rank's share of a short last batch can be empty
                # lengths and the extended vocabulary's size: from the host copy (no read back)
                src_ext = b.source_ext if model.copy else None
                n_ext = batch.extended_size(len(self.vocab)) if model.copy else None
                logits, _ = model(b.src, batch.src_len, b.tgt_in, forcing[: b.tgt.size(1)], src_ext, n_ext)  # (B, T, V)
                loss = masked_loss(logits, b.target_ext if model.copy else b.tgt, log_probs=model.copy)
                if dp:
                    loss = loss * share  # its token losses / the global batch's tokens
                loss.backward()
            else:
                loss = torch.zeros((), device=self.device)
            if dp:  # sum of the ranks' gradients = the whole batch's; loss too, in one bucket
                loss = dp.sum_gradients(self.optimizer.params, loss)
            norm = clip_grad_norm(model.parameters(), cfg.clip)
            self.optimizer.lr = self.lr_plan.rate(self.optimizer.t)
            self.optimizer.step()
            # bookkeeping stays on the device: no .item() per batch
            loss = loss.detach()
            losses.append(loss)
            loss_sum += loss
            norm_sum += norm
            norm_max = torch.maximum(norm_max, norm)
            first_bad = torch.where((first_bad == 0) & ~torch.isfinite(loss), i + 1, first_bad)
            # reading first_bad is free on the CPU; on a GPU it waits, so look once per
            # NAN_CHECK_EVERY batches (the epoch's end looks at the last ones, in its one read)
            looks = self.device.type == "cpu" or (i % NAN_CHECK_EVERY == NAN_CHECK_EVERY - 1 and i + 1 < n)
            if looks and int(first_bad) > 0:
                raise NonFiniteLoss(epoch, int(first_bad))
            yield BatchDone(epoch, i + 1, n, loss)
            if epoch == 1 and i + 1 in watch_marks:  # attention as it forms: 1, 2, 4, 8, ... batches
                yield self.snapshot(epoch, i + 1, n)
        # the epoch's figures and the last batches' check in one read (bytes: the same values)
        first_bad, loss_sum, norm_sum, norm_max, batch_losses = download(
            first_bad, loss_sum, norm_sum, norm_max, torch.stack(losses) if losses else loss_sum.new_zeros(0)
        )
        if int(first_bad) > 0:
            raise NonFiniteLoss(epoch, int(first_bad))
        return EpochTrainStats(float(loss_sum) / n, float(norm_sum) / n, float(norm_max), tokens, batch_losses.tolist())

    def validate(self) -> tuple[float, float]:
        """(loss, exact match) of the validation pass (see validation)."""
        v = self.validation()
        return v.loss, v.exact_match

    @torch.no_grad()
    def validation(self) -> Validation:
        """Loss and exact match with the model feeding itself (no teacher forcing), in one
        pass: a sentence matches by the rule of every exact match figure (engine/insight/exact_match.py's
        exact_match), decided on the device (exact_match_batch) from the argmax words and the
        attention that chose them. Its matches are counted by sentence length on the device
        and read once, at the end, with the loss: the overall figure is their sum, so by
        length costs no extra read."""
        self.model.eval()
        dp = distributed.current()
        words_of = self.val_set.src_len - 1  # (N,) words per sentence, on the host
        width = int(words_of.max()) + 1 if len(words_of) else 1
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros(width, dtype=torch.long, device=self.device)  # (L,) matches by length
        tokens = 0
        for k, batch in enumerate(self.val_set.batches(self.cfg.batch_size)):
            if dp and k % dp.world != dp.rank:
                continue  # data-parallel: whole batches, round robin
            b = batch.to(self.device)
            forcing = torch.zeros(b.tgt.size(1), dtype=torch.bool)  # the model feeds itself
            copy = self.model.copy
            src_ext, n_ext = (b.source_ext, batch.extended_size(len(self.vocab))) if copy else (None, None)
            logits, attention = self.model(b.src, batch.src_len, b.tgt_in, forcing, src_ext, n_ext)
            tgt = b.target_ext if copy else b.tgt  # copy: unknown words at their extended ids
            n_tok = int((batch.tgt != PAD).sum())  # the CPU copy: no device sync
            loss_sum += masked_loss(logits, tgt, log_probs=copy) * n_tok
            tokens += n_tok
            words = upload(batch.src_len - 1, self.device)  # (B,)
            match = exact_match_batch(logits.argmax(-1), attention, b.source_ext, b.target_ext, words)  # (B,)
            correct.index_add_(0, words, match.long())
        if dp:  # loss, tokens and the matches by length summed over the ranks, in one all-reduce
            sums = dp.sum_(
                torch.cat(
                    [
                        loss_sum.double().reshape(1),
                        torch.tensor([float(tokens)], dtype=torch.float64, device=self.device),
                        correct.double(),
                    ]
                ),
                "validation",
            )
            loss_sum, tokens, correct = sums[0], int(sums[1]), sums[2:].round().long()
        loss_sum, correct = download(loss_sum, correct)  # the one read: the loss and the matches
        by_length_correct = correct.tolist()
        totals = torch.bincount(words_of, minlength=width).tolist()  # known without the model
        by_length = {n: [by_length_correct[n], t] for n, t in enumerate(totals) if t}
        matched = sum(c for c, _ in by_length.values())
        return Validation(float(loss_sum) / tokens, matched / len(self.val_set), by_length)

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> Iterator[BatchDone | EpochDone | Snapshot]:
        cfg, dp = self.cfg, distributed.current()
        if dp:  # same data and model everywhere, the same weights, each rank its own dropout
            dp.check_same(
                "data or models (train, val, vocabulary, batches, parameters)",
                [
                    len(self.train_set),
                    len(self.val_set),
                    len(self.vocab),
                    self.train_set.num_batches(cfg.batch_size),
                    sum(p.numel() for p in self.model.parameters()),
                ],
            )
            params = list(self.model.parameters())
            dp.broadcast_(p.data for p in params)
            torch.autograd.graph.increment_version(params)  # .data writes bump no version: count them
            dp.seed_dropout()
        start = len(self.history) + 1
        n_batches = self.train_set.num_batches(cfg.batch_size)
        bad_epochs = start - 1 - self.best_epoch if self.best_epoch else 0  # resumed runs too
        meter = UsageMeter(self.device)
        for epoch in range(start, cfg.epochs + 1):
            meter.start_epoch()
            t0 = time.perf_counter()
            stats = yield from self.train_epoch(epoch)
            val = self.validation()
            val_loss, val_em = val.loss, val.exact_match
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            best = val_loss < self.best_val_loss
            usage = meter.read()
            done = EpochDone(
                epoch,
                stats.loss,
                val_loss,
                val_em,
                seconds,
                stats.grad_norm,
                stats.grad_norm_max,
                stats.tokens,
                best,
                stats.batch_losses,
                lr=float(self.optimizer.lr),
                tokens_per_s=tokens_per_second(stats.tokens, seconds),
                seconds_left=seconds_left([h["seconds"] for h in self.history] + [seconds], cfg.epochs - epoch),
                rss_mib=usage.rss_mib,
                gpu_mib=usage.gpu_mib,
                gpu_peak_mib=usage.gpu_peak_mib,
                gpu_util=usage.gpu_util,
                val_by_length=val.by_length,
            )
            self.history.append(done.as_dict())
            epoch_snapshot = self.snapshot(epoch, n_batches, n_batches) if self.watching else None
            if best:
                self.best_val_loss, self.best_epoch = val_loss, epoch
                if distributed.is_main():  # data-parallel: rank 0 alone writes
                    self.save(self.checkpoint_path)
                bad_epochs = 0
            else:
                bad_epochs += 1
            if distributed.is_main():
                self.save(self.last_path)  # the latest state, for --resume
            yield done
            if epoch_snapshot is not None:
                yield epoch_snapshot
            if cfg.patience and bad_epochs >= cfg.patience:
                return

    @property
    def watching(self) -> bool:
        return bool(self.watch) and distributed.is_main()  # data-parallel: rank 0 decodes them alone

    def snapshot(self, epoch: int, batch: int, batches: int) -> Snapshot:
        """The watch sentences decoded as the model stands now, kept with the run."""
        snap = take_snapshot(self.model, self.vocab, self.watch, self.device, epoch, batch, batches)
        self.model.train()
        self.snapshots.append(snap)
        return snap

    def payload(self) -> dict:
        return {
            "format": FORMAT,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": {
                k: [t.cpu() for t in v] if isinstance(v, list) else v for k, v in self.optimizer.state_dict().items()
            },
            "config": self.cfg.to_dict(),
            "lr_plan": self.lr_plan.record(self.optimizer.t, float(self.optimizer.lr)),
            "vocab": self.vocab.words(),
            "epoch": len(self.history),
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "history": [dict(h) for h in self.history],
            **({"run": dict(self.run_record)} if self.run_record else {}),
            "watch": [list(w) for w in self.watch],
            "snapshots": [s.as_dict() for s in self.snapshots],
            # random state, so a resumed run draws the same batches, forcing and dropout
            "rng": {
                "batches": self.rng.get_state(),
                "torch": torch.get_rng_state(),
                # CUDA's generators too (dropout masks on a GPU), when CUDA is in use
                **({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_initialized() else {}),
            },
        }

    @property
    def last_path(self) -> Path:
        """Where the latest epoch's full state goes: best.pt -> best.last.pt."""
        return last_path(self.checkpoint_path)

    @classmethod
    def resume(
        cls,
        payload: dict,
        checkpoint_path: str | Path,
        device: torch.device | None = None,
        epochs: int | None = None,
        device_name: str | None = None,
    ) -> Trainer:
        """Continue a run from a checkpoint's full state (model, optimiser, learning-rate plan,
        history, random state); with `epochs`, train up to that many epochs in all, the
        learning rate going on from the last step's without rising (LrPlan.resumed)."""
        t = cls(resumed_config(payload, epochs, device_name), checkpoint_path, device=device)
        if t.vocab.words() != list(payload["vocab"]):
            raise ValueError("the checkpoint's vocabulary differs from the data it would resume on")
        t.model.load_state_dict(payload["model"])
        t.optimizer.load_state_dict(
            {k: ([x.to(t.device) for x in v] if isinstance(v, list) else v) for k, v in payload["optimizer"].items()}
        )
        n = t.train_set.num_batches(t.cfg.batch_size)
        if "lr_plan" in payload:
            plan = LrPlan.from_record(payload["lr_plan"])
        else:  # a checkpoint from before plans were kept: its steps followed the fresh plan
            # over the epochs its own configuration names (a run resumed with other epochs then
            # had its schedule recomputed from them), so that plan gives the rates it used last
            saved = Config.from_dict(payload["config"])
            plan = LrPlan.fresh(saved.lr, saved.lr_schedule, saved.epochs * n)
        t.lr_plan = plan.resumed(t.cfg.epochs * n, t.optimizer.t, t.optimizer.lr)
        t.history = [dict(h) for h in payload["history"]]
        t.best_epoch = payload.get("best_epoch")
        t.best_val_loss = payload.get("best_val_loss", math.inf)
        t.watch = [list(w) for w in payload.get("watch") or []]
        t.snapshots = [Snapshot.from_dict(d) for d in payload.get("snapshots") or []]
        if "rng" in payload:
            t.rng.set_state(payload["rng"]["batches"])
            torch.set_rng_state(payload["rng"]["torch"])  # after manual_seed, which reset both
            cuda_states = payload["rng"].get("cuda")
            if cuda_states and torch.cuda.is_available():
                for i, state in enumerate(cuda_states[: torch.cuda.device_count()]):
                    torch.cuda.set_rng_state(state, i)
        return t

    def save(self, path: str | Path) -> Path:
        return save_atomic(self.payload(), path)
