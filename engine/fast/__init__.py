"""Optional speed: the same maths as engine/model.py, written for speed where a benchmark
showed it pays. The hand-written training loop of the decoder with its own backward pass
(decoder_loop, gru_cell), the encoder's GRU scan (gru_scan) and the fused C kernels behind
them (native, step_kernels); greedy decoding runs the loop's decoder step too.

Nothing here is needed to train or probe: `--impl reference` runs engine/model.py's plain
PyTorch under autograd. `engine.model.choose_impl` decides, in one place, when this layer
runs; tests/test_parity.py holds it equal to the reference for each configuration it
implements.
"""
