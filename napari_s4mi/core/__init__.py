"""Headless engine of napari-s4mi: no Qt, no napari; torch is imported only by the modules that train or predict."""
