"""Training, tuning, calibration, baselines, backtests, explanations and scoring."""
