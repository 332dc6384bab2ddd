"""Evaluation: the predictions schema, evaluate (any Predictor), the metrics report, compare."""
