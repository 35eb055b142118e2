"""The top line: the app's name and what the screen shows.

A plain Static that the screens update themselves. Textual's Header redraws from watchers
on the app's and the screen's titles, and such a watcher can still fire after the Header
has been taken down when the app exits right after a screen change (NoMatches)."""

from __future__ import annotations

from textual.widgets import Static


class TitleBar(Static):
    DEFAULT_CSS = """
    TitleBar {
        dock: top;
        width: 1fr;
        height: 1;
        background: $panel;
        color: $foreground;
        text-align: center;
    }
    """

    def show(self, what: str) -> None:
        # one line the screen's width whatever it says: a repaint, not a new layout
        self.update(f"[b]reverse-tui[/b] — {what}", layout=False)
