"""Registry of example sources: `SOURCES` and `get_source(data_config)`.

A source has an `info` attribute (`DatasetInfo`) and an `examples(split)` method returning a
deterministic `tf.data.Dataset` of dicts {"image": uint8 [H, W, 3] RGB, "label": uint8 [H, W]
(255 = ignore), "name": tf.string scalar}. Each source class builds itself with
`from_config(data_config)`, which honours `data_config.max_examples` (first N of a split).
"""

import difflib

from deeplab_tf.data.camvid_folder import CamVidFolder
from deeplab_tf.data.synthetic_shapes import SyntheticShapes

SOURCES = {
    "synthetic_shapes": SyntheticShapes,
    "camvid_folder": CamVidFolder,
}


def get_source(data_config):
    """Returns the source named `data_config.dataset`, built from `data_config`.

    Raises ValueError listing the known names and the closest match for an unknown name.
    """
    name = data_config.dataset
    if name not in SOURCES:
        close = difflib.get_close_matches(name, SOURCES, n=1, cutoff=0.4)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown dataset {name!r}.{hint} Known datasets: {', '.join(sorted(SOURCES))}"
        )
    return SOURCES[name].from_config(data_config)
