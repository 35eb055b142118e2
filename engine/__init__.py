"""reverse-tui's PyTorch engine: data, model, hand-written Adam, training, evaluation,
analysis, plots and checkpoints. It never imports textual, so the headless run works where
only torch, rich, matplotlib and seaborn are installed."""
