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
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from torch_models import resnet20  # noqa: E402  (TF "same" padding, as ours)
from torch_step import AdaHessian  # noqa: E402


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
