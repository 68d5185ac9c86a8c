"""Accuracy and latency predictors (fit/predict). Arrives with the search issue."""
