"""Training: the run from data to release, the Trainer it uses, and stopping/resuming."""
