"""Peers benchmark worker: DeepLabv3 ResNet-50 at output stride 16 in plain PyTorch, built to be
the same network as deeplab-tf's `voc_v3_r50_os16` (same parameter count): Keras Applications'
ResNet-50 v1 (stride on the first 1x1 convolution of a stage, convolutions with bias), conv5 at
stride 1 with dilation 2 x multi-grid (1, 2, 4), ASPP (1x1, three 3x3 at rates 6/12/18, image
pooling; 256 filters, no bias, batch norm, ReLU) -> concat -> 1x1 projection -> 1x1 classifier
-> bilinear resize to the input. Random weights.

torchvision's `deeplabv3_resnet50` is not used: torchvision's default Linux wheel is a CUDA
build (its _C.so needs libtorch_cuda.so), so it cannot be imported next to the CPU torch wheel.
Config keys beyond the common ones: `channels_last` (default true), `threads`
(torch.set_num_threads, 0 = default), `freeze` (inference only: the network traced with
`torch.jit.trace` and `torch.jit.freeze`d, PyTorch's recipe for CPU inference: parameters become
constants, batch norms fold into the convolutions, and oneDNN prepares each convolution's weights
once; in bfloat16 the trace records autocast's casts).
With `precision` "bfloat16", the forward pass runs under `torch.autocast("cpu", torch.bfloat16)`
(PyTorch's mixed precision: float32 parameters, bfloat16 convolutions)."""

from bench.peers.protocol import make_inputs, serve


def build_network(num_classes, rates=(6, 12, 18), multi_grid=(1, 2, 4)):
    import torch
    from torch import nn
    from torch.nn import functional as F

    def conv_bn(cin, cout, kernel, stride=1, dilation=1, bias=True, relu=True):
        padding = dilation * (kernel - 1) // 2
        layers = [nn.Conv2d(cin, cout, kernel, stride, padding=padding, dilation=dilation, bias=bias),
                  nn.BatchNorm2d(cout, eps=1.001e-5)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        return nn.Sequential(*layers)

    class Bottleneck(nn.Module):
        def __init__(self, cin, filters, stride, dilation):
            super().__init__()
            projected = stride != 1 or cin != 4 * filters
            self.shortcut = conv_bn(cin, 4 * filters, 1, stride, relu=False) if projected else None
            self.body = nn.Sequential(
                conv_bn(cin, filters, 1, stride),
                conv_bn(filters, filters, 3, 1, dilation),
                conv_bn(filters, 4 * filters, 1, relu=False),
            )

        def forward(self, x):
            shortcut = x if self.shortcut is None else self.shortcut(x)
            return F.relu(self.body(x) + shortcut)

    class ASPP(nn.Module):
        def __init__(self, cin, filters, rates):
            super().__init__()
            self.branches = nn.ModuleList(
                [conv_bn(cin, filters, 1, bias=False)] + [conv_bn(cin, filters, 3, 1, r, bias=False) for r in rates]
            )
            self.pool = conv_bn(cin, filters, 1, bias=False)
            self.project = conv_bn(filters * (len(rates) + 2), filters, 1, bias=False)

        def forward(self, x):
            outputs = [branch(x) for branch in self.branches]
            pooled = self.pool(x.mean(dim=(2, 3), keepdim=True))
            outputs.append(F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False))
            return self.project(torch.cat(outputs, dim=1))

    class DeepLabV3(nn.Module):
        def __init__(self):
            super().__init__()
            stem = [conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, padding=1)]
            blocks, cin = [], 64
            # (filters, units, stride); conv5 keeps stride 1 at output stride 16 and is dilated instead.
            for index, (filters, units, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 1))):
                for unit in range(units):
                    dilation = 2 * multi_grid[unit] if index == 3 else 1
                    blocks.append(Bottleneck(cin, filters, stride if unit == 0 else 1, dilation))
                    cin = 4 * filters
            self.backbone = nn.Sequential(*stem, *blocks)
            self.aspp = ASPP(2048, 256, rates)
            self.logits = nn.Conv2d(256, num_classes, 1)

        def forward(self, images):
            logits = self.logits(self.aspp(self.backbone(images)))
            return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)

    return DeepLabV3()


def forward_gflops(network, batch, height, width):
    """Forward GFLOPs of the Conv2d layers (2 * outputs * kernel taps * input channels / groups)."""
    import torch

    total = []

    def hook(module, inputs, output):
        kh, kw = module.kernel_size
        total.append(2.0 * output.numel() * kh * kw * module.in_channels / module.groups)

    handles = [m.register_forward_hook(hook) for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        network.eval()(torch.zeros(batch, 3, height, width))
    for handle in handles:
        handle.remove()
    return round(sum(total) / 1e9, 3)


def build(config):
    import contextlib

    import torch

    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))
    torch.manual_seed(config["seed"])
    network = build_network(config["num_classes"], tuple(config.get("rates", (6, 12, 18))))
    gflop = forward_gflops(network, config["batch"], config["height"], config["width"])
    parameters = int(sum(p.numel() for p in network.parameters() if p.requires_grad))
    channels_last = config.get("channels_last", True)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    network = network.to(memory_format=memory_format)
    images, labels = make_inputs(config)
    images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
    labels = torch.from_numpy(labels).long()

    precision = config.get("precision", "float32")
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be float32 or bfloat16, got {precision!r}")

    def autocast():
        if precision == "bfloat16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    freeze = bool(config.get("freeze"))
    if freeze and config["mode"] != "inference":
        raise ValueError("freeze is for inference only")
    if config["mode"] == "inference":
        network.eval()
        if freeze:
            # Autocast's casts go into the trace (TorchScript's own autocast pass off), and
            # parameters that require no gradient can become the frozen graph's constants.
            torch._C._jit_set_autocast_mode(False)
            network.requires_grad_(False)
            with torch.no_grad(), autocast():
                network = torch.jit.freeze(torch.jit.trace(network, images, check_trace=False))

        def run():
            with torch.inference_mode(), (contextlib.nullcontext() if freeze else autocast()):
                return network(images).float().numpy()

    else:
        network.train()
        optimizer = torch.optim.SGD(network.parameters(), lr=1e-3, momentum=0.9)

        def run():
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                logits = network(images)
            loss = torch.nn.functional.cross_entropy(logits.float(), labels, ignore_index=255)
            loss.backward()
            optimizer.step()
            return float(loss)

    info = {
        "version": f"torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "channels_last": channels_last,
        "frozen": freeze,
        "precision": precision,
        "model": "DeepLabV3 ResNet-50 (Keras-Applications layout) OS16 multi-grid [1, 2, 4] rates "
                 f"{list(config.get('rates', (6, 12, 18)))}, plain torch",
        "parameters": parameters,
        "flops": {"gflop": gflop, "ops_with_unknown_shape": 0},
    }
    return run, info


if __name__ == "__main__":
    serve(build)
