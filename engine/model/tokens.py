"""The ids every vocabulary gives its four special tokens (engine/train/data.py, Vocab): the
model reads them to start, end and pad a decoding, and to read an unknown word."""

PAD, SOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<sos>", "<eos>", "<unk>"]
