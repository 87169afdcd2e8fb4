"""deeplab-tf vs keras-hub, TF Model Garden and PyTorch (`python -m bench.peers_compare`).

The workers (`bench.peers.worker_*`) run in the peers' own virtualenvs, where deeplab_tf is not
installed: the driver starts them as `python -m bench.peers.worker_X` with the repository root as
their working directory. So this package and `protocol`, `report`, `venvs` and `tf_common` import
only the standard library, numpy and the framework of the worker that uses them.
"""
