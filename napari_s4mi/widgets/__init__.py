"""The napari front: Project, Train and Predict widgets sharing one per-viewer session (Qt here, no torch)."""
