"""`s4mi bench`: the engine against a plain fp32 eager step and a simple autocast step of the same work.

Not part of the plugin: it lives in the repository's ``benchmarks/`` folder (``napari_s4mi.bench_entry`` puts that
folder on ``sys.path``) and imports the plugin's engine, never the other way round. Every timed implementation runs
in fresh processes of its own (``python -m s4mi_bench.<module>``, see :mod:`s4mi_bench.proc`); the process that
runs ``s4mi bench`` never imports napari or the widgets (the GUI-latency part is a process of its own too).
"""
