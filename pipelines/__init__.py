"""Stages wired together: configuration, the ``churn`` CLI and MLflow tracking."""
