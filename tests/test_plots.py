"""engine/insight/plots.py: the loss curve's points, one per batch where the history has them, and
their smoothing."""

import math

from engine.insight.plots import batch_points, smooth


def test_batch_points_and_smoothing():
    history = [
        {"epoch": 1, "train_loss": 2.0, "batch_losses": [4.0, 2.0, 1.0, 0.5]},
        {"epoch": 2, "train_loss": 0.3},
    ]  # an older checkpoint: no per-batch losses
    pts = batch_points(history)
    assert [x for x, _ in pts] == [0.25, 0.5, 0.75, 1.0, 2.0]
    assert pts[-1] == (2.0, 0.3)
    s = smooth(pts)
    assert s[0] == pts[0]  # starts at the first value, not pulled towards zero
    assert all(b <= a for (_, a), (_, b) in zip(s, s[1:]))  # a falling loss stays falling
    assert smooth([(1, 1.0), (2, 1.0)]) == [(1, 1.0), (2, 1.0)]
    assert smooth([(1, float("nan")), (2, 0.0), (3, 2.0)]) == [(3, 2.0)]
    assert math.isclose(smooth([(1, 1.0), (2, math.e)], beta=0.5)[1][1], math.exp(0.5))
