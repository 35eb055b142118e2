"""What a model and a run show: evaluation and exact match, lengths, analysis, watch snapshots,
the step-through, plots and their process, reports and the TensorBoard log."""
