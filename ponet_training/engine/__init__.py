"""What every training script runs: flags, the run directory, the loop, checkpoints and the best model."""
