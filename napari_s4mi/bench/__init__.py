"""`s4mi bench`: the engine against a plain fp32 eager PyTorch implementation of the same work.

The CLI side of the benchmark never imports napari or the widgets; the GUI-latency part runs as its own process.
"""
