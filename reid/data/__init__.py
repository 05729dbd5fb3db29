"""Data layer: dataset readers, validation, sampling, clip datasets, augmentation, synthetic data, noise."""
