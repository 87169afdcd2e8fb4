"""`--precision=auto`: an export on a CPU with native bfloat16 units (a faked /proc/cpuinfo) is a
bfloat16 model, elsewhere a float32 one, and dataset_info.json records what was chosen and why."""

import json

import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from export.export_saved_model import PRECISIONS, export_saved_model, resolve_precision
from export.serving import ServingOptions
from tests.fake_cpu import AMX_CPU, BFLOAT16_CPU, FLOAT32_CPU, fake_cpuinfo

OPTIONS = ServingOptions(input_types=("image_tensor",), outputs=("probabilities",))


def convolution_dtypes(export_dir):
    """The dtypes ("T") of every Conv2D and depthwise convolution in the SavedModel's graph and functions."""
    model = saved_model_pb2.SavedModel()
    model.ParseFromString((export_dir / "saved_model.pb").read_bytes())
    graph = model.meta_graphs[0].graph_def
    nodes = list(graph.node) + [node for f in graph.library.function for node in f.node_def]
    return {tf.dtypes.as_dtype(node.attr["T"].type).name for node in nodes
            if node.op in ("Conv2D", "DepthwiseConv2dNative")}


@pytest.mark.parametrize("fake, precision, reason", [
    (BFLOAT16_CPU, "bfloat16", "AMD EPYC 9R14 has avx512_bf16"),
    (FLOAT32_CPU, "float32", "AMD EPYC 7B13 has neither avx512_bf16 nor amx_bf16"),
])
def test_auto_export_is_bfloat16_only_on_a_cpu_with_bfloat16_units(exported_demo, monkeypatch, tmp_path, fake,
                                                                     precision, reason):
    experiment, model_dir, _ = exported_demo
    fake_cpuinfo(monkeypatch, tmp_path, fake)
    lines = []
    export_saved_model(experiment, str(model_dir), str(tmp_path / "export"), options=OPTIONS, log=lines.append,
                       precision="auto")
    assert convolution_dtypes(tmp_path / "export") == {precision}
    info = json.loads((tmp_path / "export" / "assets.extra" / "dataset_info.json").read_text())
    assert (info["precision"], info["precision_requested"], info["precision_reason"]) == (precision, "auto", reason)
    assert lines[0] == f"--precision=auto: {precision} ({reason})"
    images = tf.zeros([1, 40, 56, 3], tf.uint8)
    probabilities = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"](images=images)
    assert probabilities["probabilities"].dtype == tf.float32  # outputs stay float32 either way


def test_resolve_precision(monkeypatch, tmp_path):
    fake_cpuinfo(monkeypatch, tmp_path, AMX_CPU)
    assert resolve_precision("auto") == ("bfloat16", "Intel(R) Xeon(R) Platinum 8488C has amx_bf16")
    fake_cpuinfo(monkeypatch, tmp_path, FLOAT32_CPU)
    assert resolve_precision("auto")[0] == "float32"
    for explicit in ("float32", "bfloat16"):  # never changed by the CPU
        assert resolve_precision(explicit) == (explicit, "requested")
    assert PRECISIONS == ("float32", "bfloat16", "auto")
    with pytest.raises(ValueError, match=r"precision='mixed_bfloat16'; known: \['float32', 'bfloat16', 'auto'\]"):
        resolve_precision("mixed_bfloat16")


def test_explicit_precision_is_recorded_as_requested(export_variant):
    export_dir = export_variant("bfloat16", ServingOptions(), precision="bfloat16")  # shared with test_export_saved_model
    info = json.loads((export_dir / "assets.extra" / "dataset_info.json").read_text())
    assert (info["precision"], info["precision_requested"], info["precision_reason"]) == ("bfloat16", "bfloat16",
                                                                                          "requested")
