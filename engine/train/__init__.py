"""Training: the configuration, the data, the training loop and its events, the hand-written Adam,
checkpoints, machine figures, threads and torchrun."""
