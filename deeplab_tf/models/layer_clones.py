"""Clones a functional model layer by layer from edited layer configs.

The export transforms (`fold_batch_norm`, `store_weights_in_compute_dtype`) each rebuild a model
with a few layers configured differently (a bias added, another dtype policy) or dropped, then
fill the new layers' weights from the old ones. `clone_from_configs` is that shared first step.
"""

import keras


def clone_from_configs(model: keras.Model, edit_config, dropped=frozenset()):
    """Returns a recursive clone of `model` whose layers are rebuilt from edited configs.

    Args:
        model: `keras.Model`. A functional model; nested functional models are cloned too and
            stay nested (a sub-model called several times is cloned once). It is not changed.
        edit_config: callable `(layer, config) -> None`. Edits `config`, the dict of
            `layer.get_config()`, in place before the layer's class rebuilds it with
            `from_config`.
        dropped: set of `id(layer)` of layers that become the identity on their first input
            in the clone (each must take one tensor and output a tensor of the same shape).
            Defaults to none.

    Returns:
        `(clone, pairs)`: the new functional `keras.Model` with the same inputs, outputs and
        layer names, and `[(original layer, its new layer), ...]` for every cloned layer,
        dropped ones included. The new layers' weights are freshly initialised: the caller
        sets them from the originals.
    """
    pairs, dropped_clones = [], set()

    def clone_layer(layer):
        config = layer.get_config()
        edit_config(layer, config)
        clone = layer.__class__.from_config(config)
        if id(layer) in dropped:
            dropped_clones.add(id(clone))
        pairs.append((layer, clone))
        return clone

    def call_layer(layer, *args, **kwargs):
        return args[0] if id(layer) in dropped_clones else layer(*args, **kwargs)

    clone = keras.models.clone_model(model, clone_function=clone_layer, call_function=call_layer, recursive=True)
    return clone, pairs
