"""What every trainer shares: run directories and checkpoints, the episode tracker and config
checks, evaluation, human-normalised scores, sweeps over many runs, and the shipped agents."""
