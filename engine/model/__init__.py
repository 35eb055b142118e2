"""The textbook model: encoder, attention, decoder step, output, copy, greedy and beam decoding, in plain
PyTorch under autograd; it imports nothing of the rest of the engine."""
