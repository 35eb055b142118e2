"""What the command line, the headless run and the app share, importing none of them (and
not textual): default paths and the check that a folder can be written."""
from __future__ import annotations

import tempfile
from pathlib import Path

DEFAULT_CHECKPOINT = Path("checkpoints") / "best.pt"
DEFAULT_OUT = Path("runs") / "latest"


def check_writable(directory: Path) -> str | None:
    """None if a file can be created in directory (made if missing), else the reason."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as e:
        return f"{directory}: cannot write there ({e.strerror or e})"
    return None
