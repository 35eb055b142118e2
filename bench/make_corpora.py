"""Make five real texts, none used to tune reverse-tui's defaults, for measuring `--corpus` runs on
text the project has not seen (bench/copy_study.py), from what this machine ships:

    licenses   English legal prose: the licence texts in /usr/share/common-licenses and the
               packages' copyright files (/usr/share/doc/*/copyright)
    pydoc      English technical prose: the docstrings of Python's standard library
    german     German: the translated messages of installed programs
               (/usr/share/locale/de/LC_MESSAGES/*.mo, read with Python's gettext)
    french, spanish
               the same programs' French and Spanish messages: held out, made and measured
               only once the recipe (copy, joined and repeated-word sentences) was settled
               on the three above

Each is split into sentences at . ! ? ; : and newlines, tokenised by the project's rule
(engine.train.data.tokenize); a sentence longer than 12 words is cut into pieces of 3-12 words
(seeded), pieces with digits dropped, duplicates dropped, shuffled with a seed, the first
5,000 kept, one per line. Deterministic for the same machine.

    python bench/make_corpora.py /tmp/corpora        # writes /tmp/corpora/{licenses,pydoc,german,french,spanish}.txt
"""

from __future__ import annotations

import argparse
import ast
import gettext
import glob
import random
import re
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.train.data import tokenize  # noqa: E402

MIN_WORDS, MAX_WORDS, SENTENCES = 3, 12, 5000
SPLIT = re.compile(r"[.!?;:\n]+")


def licence_texts() -> Iterable[str]:
    paths = glob.glob("/usr/share/common-licenses/*") + glob.glob("/usr/share/doc/*/copyright")
    for p in sorted(paths):
        if Path(p).is_file():
            # prose lines only: no file lists, paths, addresses or web links
            lines = Path(p).read_text(errors="ignore").splitlines()
            yield "\n".join(line for line in lines if not re.search(r"[/@*<>]|^\s*(Files|Copyright|License):", line))


def stdlib_docstrings() -> Iterable[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for p in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")):
        if "test" in p.parts or "idlelib" in p.parts:
            continue
        try:
            tree = ast.parse(p.read_text(errors="ignore"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    # a docstring's lines are wrapped prose: join them, keep paragraph breaks
                    yield re.sub(r"(?<!\n)\n(?!\n)", " ", doc)


def translated_messages(lang: str = "de") -> Iterable[str]:
    for p in sorted(glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo")):
        try:
            with open(p, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog  # msgid -> translation
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        for key in sorted(catalog, key=str):
            text = catalog[key]
            # an untranslated message is English: not kept
            if isinstance(text, str) and key and text != key and not text.startswith("Project-Id-Version"):
                yield text.replace("%", " ")


SOURCES = {
    "licenses": licence_texts,
    "pydoc": stdlib_docstrings,
    "german": translated_messages,
    # held out: made after the copy recipe was settled on the three above, measured once with it
    "french": lambda: translated_messages("fr"),
    "spanish": lambda: translated_messages("es"),
}
HELD_OUT = ("french", "spanish")


def sentences(texts: Iterable[str], rng: random.Random) -> list[str]:
    seen, keep = set(), []
    for text in texts:
        for part in SPLIT.split(text):
            words = tokenize(part)
            while words:
                n = len(words) if len(words) <= MAX_WORDS else rng.randint(MIN_WORDS, MAX_WORDS)
                piece, words = words[:n], words[n:]
                line = " ".join(piece)
                if len(piece) >= MIN_WORDS and not any(c.isdigit() for c in line) and line not in seen:
                    seen.add(line)
                    keep.append(line)
    return keep


def make(name: str, folder: Path, seed: int = 7) -> tuple[Path, int]:
    rng = random.Random(seed)
    lines = sentences(SOURCES[name](), rng)
    rng.shuffle(lines)
    lines = lines[:SENTENCES]
    path = folder / f"{name}.txt"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, len(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--only", nargs="*", choices=sorted(SOURCES))
    args = p.parse_args()
    for name in args.only or SOURCES:
        path, n = make(name, args.folder)
        print(f"{path}: {n:,} sentences")


if __name__ == "__main__":
    main()
