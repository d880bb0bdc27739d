"""Data provision per task (segmentation today): a project and a config become a run's batches."""
