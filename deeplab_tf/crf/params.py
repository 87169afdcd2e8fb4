"""`DenseCRFParams`: the weights and widths of DeepLab's fully connected CRF, and their JSON file.

Energy (Krähenbühl & Koltun, NIPS 2011; DeepLab v1/v2):
E(x) = sum_i -log P(x_i) + sum_{i<j} [x_i != x_j] (w1 exp(-|p_i-p_j|^2/2 sigma_alpha^2
- |I_i-I_j|^2/2 sigma_beta^2) + w2 exp(-|p_i-p_j|^2/2 sigma_gamma^2)),
minimised approximately by `iterations` rounds of mean-field inference.

Defaults are DeepLab's published VOC 2012 settings: w1=4, sigma_alpha=121, sigma_beta=5 are the
cross-validated bilateral values reported for DeepLab-CRF-LargeFOV (Chen et al., "Semantic Image
Segmentation with Deep Convolutional Nets and Fully Connected CRFs", ICLR 2015, Sec. 4.1) and
used as the starting point of DeepLab v2 (Chen et al., TPAMI 2017, Sec. 4.1), which fixes
w2=3, sigma_gamma=3 and runs 10 mean-field iterations. The released DeepLab v2 ResNet-101 VOC
model uses other cross-validated values (w1=4, sigma_alpha=67, sigma_beta=3, w2=3,
sigma_gamma=1): search them for your own model with `python -m deeplab_tf.cli.crf_search`.
"""

import dataclasses
import json
import math
import numbers

PARAMS_FILE = "crf_params.json"
"""Name of the file `crf_search` writes next to a model (in its model_dir)."""


@dataclasses.dataclass(frozen=True)
class DenseCRFParams:
    """Parameters of the fully connected CRF.

    Args:
        w1: float. Weight of the bilateral (appearance) kernel. Defaults to 4.
        sigma_alpha: float. Spatial width of the bilateral kernel, in pixels. Defaults to 121.
        sigma_beta: float. Colour width of the bilateral kernel, in RGB levels (0..255).
            Defaults to 5.
        w2: float. Weight of the spatial (smoothness) kernel. Defaults to 3.
        sigma_gamma: float. Width of the spatial kernel, in pixels. Defaults to 3.
        iterations: int. Mean-field iterations. Defaults to 10.

    Raises ValueError naming the field when a weight is negative or not finite, a sigma is not
    a positive finite number, or `iterations` is not an integer >= 1.

    Example:
    ```python
    params = DenseCRFParams(w1=5, sigma_alpha=50, sigma_beta=3)
    refined = deeplab_tf.crf.refine(image, probabilities, params)
    ```
    """

    w1: float = 4.0
    sigma_alpha: float = 121.0
    sigma_beta: float = 5.0
    w2: float = 3.0
    sigma_gamma: float = 3.0
    iterations: int = 10

    def __post_init__(self):
        for name in ("w1", "sigma_alpha", "sigma_beta", "w2", "sigma_gamma"):
            value, is_sigma = getattr(self, name), name.startswith("sigma")
            if not (_is_real(value) and math.isfinite(value) and (value > 0 if is_sigma else value >= 0)):
                bound = "> 0" if is_sigma else ">= 0"
                raise ValueError(f"DenseCRFParams.{name} must be a finite number {bound}, got {value!r}")
            object.__setattr__(self, name, float(value))
        iterations = self.iterations
        if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 1:
            raise ValueError(f"DenseCRFParams.iterations must be an integer >= 1, got {iterations!r}")
        object.__setattr__(self, "iterations", int(iterations))

    def to_dict(self) -> dict:
        """Returns the parameters as a JSON-safe dict keyed by field name."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "DenseCRFParams":
        """Returns parameters from a dict keyed by field name.

        Raises ValueError naming unknown keys, and as the constructor for invalid values.
        """
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            known = [f.name for f in dataclasses.fields(cls)]
            raise ValueError(f"Unknown DenseCRFParams fields {unknown}; known: {known}")
        return cls(**values)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def save_params(params: DenseCRFParams, path: str, **extra) -> None:
    """Writes `{"params": params.to_dict(), **extra}` as JSON to `path` (extra must be JSON-safe)."""
    with open(path, "w") as f:
        json.dump({"params": params.to_dict(), **extra}, f, indent=2)


def load_params(path: str) -> DenseCRFParams:
    """Returns the parameters stored in a file written by `save_params` (e.g. crf_params.json).

    Raises FileNotFoundError if `path` does not exist and ValueError naming it if it is not JSON
    or holds no valid "params" entry.
    """
    with open(path) as f:
        try:
            content = json.load(f)
        except ValueError as error:  # json.JSONDecodeError, UnicodeDecodeError
            raise ValueError(f"{path} is not a JSON file of CRF parameters ({error})") from None
    if not isinstance(content, dict) or not isinstance(content.get("params"), dict):
        raise ValueError(f"{path} has no 'params' object (expected a file written by deeplab_tf.cli.crf_search)")
    return DenseCRFParams.from_dict(content["params"])
