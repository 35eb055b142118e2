"""Make a real English text of N sentences from what a Debian machine ships, for measuring
`--corpus`: prose sentences of 3-10 words from Vim's help files (plain
English about an editor; no help tags, code or numbers), deduplicated, shuffled with a seed.

    python bench/make_english_corpus.py /tmp/english.txt            # 5,000 sentences
    reverse-tui --no-ui --corpus /tmp/english.txt

Measured 2026-12-01 (4,000 training sentences, 500 test; seed 42):
  defaults of that day (2 epochs, min-freq 1, unk-rate 0.03)   0.0% test exact match, 73 s
    (vocabulary 3,219; the cores were shared during that run)
  --unk-rate 0.3 --epochs 10 --lr 0.005                        90.8%, 51 s (vocabulary 3,219)
  --unk-rate 0.3 --epochs 10 --lr 0.005 --min-freq 2           99.2%, 37 s (vocabulary 1,688)
Words seen once becoming <unk> is what teaches copying an unknown word through attention;
the defaults do not do this yet, and this file is how to measure the fix.
"""

from __future__ import annotations

import argparse
import glob
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.train.data import tokenize  # noqa: E402

SOURCES = "/usr/share/vim/vim*/doc/*.txt"
NOT_PROSE = re.compile(r"[{}<>|*=\\/`\[\]@#$%^&_~]")  # help tags, code, option syntax


def sentences(paths: list[str], min_len: int, max_len: int) -> list[str]:
    text = re.sub(r"\s+", " ", "\n".join(Path(p).read_text(errors="ignore") for p in paths))
    seen, keep = set(), []
    for s in re.split(r"(?<=[.!?])\s+", text):
        words = tokenize(s)
        if (
            NOT_PROSE.search(s)
            or not s[:1].isupper()
            or not min_len <= len(words) <= max_len
            or any(ch.isdigit() for w in words for ch in w)
        ):
            continue
        key = " ".join(words)
        if key not in seen:
            seen.add(key)
            keep.append(s.strip())
    return keep


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--min-len", type=int, default=3)
    ap.add_argument("--max-len", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    paths = sorted(glob.glob(SOURCES))
    if not paths:
        print(f"make_english_corpus: no files match {SOURCES} (apt-get install vim-runtime)", file=sys.stderr)
        return 2
    keep = sentences(paths, args.min_len, args.max_len)
    random.Random(args.seed).shuffle(keep)
    args.out.write_text("\n".join(keep[: args.n]) + "\n")
    print(f"wrote {min(args.n, len(keep))} of {len(keep)} sentences to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
