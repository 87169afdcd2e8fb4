"""Benchmarks of deeplab-tf (not part of the installed package): long runs and speed comparisons.

Run each script as a module from the repository root, e.g. `python -m bench.atrous_train_step`
or `python -m bench.peers_compare --mode=training`; results and their commands are in
BENCHMARKS.md. Importing this package imports nothing else (no TensorFlow, no deeplab_tf).
"""
