"""Optional speed: engine/model's maths again, written for speed where a benchmark showed it
pays, chosen in one function (engine/impl.py, choose_impl).

seq2seq.py hands the model's training pass and greedy decoding to the rest: the decoder's
training loop with its own backward pass (decoder_loop, gru_cell), the encoder's GRU scan
(gru_scan) and the fused C kernels behind them (native, step_kernels; Adam's too). Nothing
here is needed to train, evaluate or probe: with this package removed the reference runs
(tests/test_layout_rules.py hides it and trains). tests/test_parity.py holds it equal to the
reference for each configuration it implements.
"""
