"""What every command's flags share: the words a Config flag takes and the way a flag's help
reads (tui/cli.py's parser and the other commands' parsers, docs/flags.md)."""

from __future__ import annotations

from engine.train.config import SCORES


def helped(text: str, default: object = None) -> str:
    """A flag's help as `--help` prints it and docs/flags.md lays it out: the text, then its
    default, if any, as `(default: ...)`. argparse %-formats help, so a % is doubled."""
    text = text.replace("%", "%%")
    return text if default is None else f"{text} (default: {default})"


# Config's words: the values each takes
CHOICES = {
    "device": ["auto", "cpu", "cuda"],
    "impl": ["auto", "reference", "fast"],
    "lr_schedule": ["cosine", "constant"],
    "score": list(SCORES),
}
