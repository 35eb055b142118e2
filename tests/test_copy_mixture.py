"""engine/fast/copy_mixture.py's hand-written mixture against engine/model/copy.py's under
autograd: values and every gradient, with repeated source words, padding, extended ids and
words whose probability underflows to the clamp."""

import torch

from engine.fast.copy_mixture import CopyMixture, copy_mixture_log_probs
from engine.model.copy import copy_mixture
from engine.model.tokens import PAD


def inputs(dtype: torch.dtype, seed: int = 0):
    """N rows over V words, S source positions (the last padded in half the rows), some
    source words repeated, some at extended ids past V."""
    g = torch.Generator().manual_seed(seed)
    N, V, S, n_ext = 6, 9, 5, 12
    logits = torch.randn(N, V, generator=g, dtype=dtype) * 3
    logits[0, :4] = -1e4  # softmax underflows to 0 here: words neither generated nor looked at clamp
    gate = torch.randn(N, 1, generator=g, dtype=dtype)
    src_ext = torch.randint(4, n_ext, (N, S), generator=g)
    src_ext[:, 1] = src_ext[:, 0]  # a repeated word: its weights add up
    src_ext[::2, -1] = PAD
    scores = torch.randn(N, S, generator=g, dtype=dtype)
    scores[::2, -1] = float("-inf")  # no weight on padding
    weights = torch.softmax(scores, 1)
    return logits, gate, weights, src_ext, n_ext


def test_the_mixture_and_its_gradients_equal_autograd_on_the_models_mixture():
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-5)):
        logits, gate, weights, src_ext, n_ext = inputs(dtype)
        upstream = torch.randn(logits.size(0), n_ext, generator=torch.Generator().manual_seed(1), dtype=dtype)
        results = []
        for mixture in (lambda *a: copy_mixture(*a)[0], copy_mixture_log_probs):
            leaves = [x.clone().requires_grad_() for x in (logits, gate, weights)]
            logp = mixture(*leaves, src_ext, n_ext)
            (logp * upstream).sum().backward()
            results.append([logp.detach()] + [x.grad for x in leaves])
        floor = torch.log(torch.tensor(torch.finfo(dtype).tiny, dtype=dtype))
        clamped = results[0][0] == floor
        assert clamped.any() and torch.equal(clamped, results[1][0] == floor)  # the clamp, on both
        for name, a, b in zip(("log p", "d logits", "d gate", "d weights"), *results):
            scale = max(1.0, float(a.abs().max()))
            assert float((a - b).abs().max()) <= tol * scale, (dtype, name)


def test_the_mixtures_gradients_match_finite_differences():
    logits, gate, weights, src_ext, n_ext = inputs(torch.float64, seed=2)
    logits[0, :4] = 0.0  # finite differences need no clamp in the way
    args = [x.clone().requires_grad_() for x in (logits, gate, weights)]
    assert torch.autograd.gradcheck(lambda a, b, c: CopyMixture.apply(a, b, c, src_ext, n_ext), args)
