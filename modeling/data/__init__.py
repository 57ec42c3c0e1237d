"""Data: reading a root into an index, the run's manifest, which rows a command scores, file checks,
duplicates, the generated demo data and VAE reconstructions."""
