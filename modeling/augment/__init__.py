"""Training-time augmentations: robustness transforms, generator-like decoders, and self-made fakes."""
