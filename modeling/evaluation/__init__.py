"""Evaluation of a saved model folder: scoring and figures, the robustness sweep, plots."""
