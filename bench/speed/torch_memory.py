"""PyTorch reference for bench/speed/memory.ts: ResNet-20 (option A shortcuts, batch norm) on
28x28x1, batch 64, one thread; AdaHessian as in torch_step.py (lr 0.15, f = 1) or Adam. Prints
one JSON line with ms per step and the process's peak RSS (getrusage), one configuration per
process as on the TF.js side.

    python3 bench/speed/torch_memory.py adahessian-f1
    python3 bench/speed/torch_memory.py adam
"""

import json
import os
import resource
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from torch_step import AdaHessian  # noqa: E402


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1)
        self.pad = cout - cin
        self.stride = stride

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1 or self.pad:
            # Option A: subsampled identity, zero channels appended.
            shortcut = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.pad))
        return F.relu(out + shortcut)


def resnet20(width=16, n=3):
    layers = [nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width, eps=1e-3), nn.ReLU()]
    cin = width
    for stage, cout in enumerate([width, 2 * width, 4 * width]):
        for b in range(n):
            layers.append(Block(cin, cout, 2 if stage > 0 and b == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10)]
    return nn.Sequential(*layers)


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "adahessian-f1"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    torch.set_num_threads(1)
    torch.manual_seed(1)
    model = resnet20()
    x = torch.randn(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))
    second_order = name.startswith("adahessian")
    opt = AdaHessian(model.parameters()) if second_order else torch.optim.Adam(model.parameters())
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward(create_graph=second_order)
        opt.step()
        times.append(round((time.perf_counter() - start) * 1000))
    print(json.dumps({"torch": torch.__version__, "optimizer": name, "batch": 64,
                      "msPerStep": times,
                      "peakRssMB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()
