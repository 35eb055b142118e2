"""reverse-tui's faces: the command line, the headless runner and the Textual app.
Importing this package (or `tui.cli`, `tui.headless`) never imports textual, so
`reverse-tui --no-ui` runs where only torch, rich, matplotlib and seaborn are installed."""
