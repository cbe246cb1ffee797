"""PyTorch reference for bench/speed/step.ts: the same MLP and small CNN (batch 128), char
transformer and ResNet-20 (batch 64, twins in torch_models.py), and the same optimizers, timed per training step. Run as a server by the TypeScript harness (one JSON
request per line on stdin, one JSON answer per line on stdout) so that its timings interleave
with the TF.js ones in the same run. Never a dependency of the package: Debian's python3-torch.

AdaHessian follows the official implementation (github.com/amirgholami/adahessian): the
gradient with create_graph=True, one Rademacher probe z, Hz by a second autograd.grad, D =
|z * Hz| averaged over the spatial positions of conv kernels, Adam-like update with the
bias-corrected sqrt(v) ** k denominator. With hessian_every = f the diagonal is recomputed
every f-th step (the official code's "update_each"), reusing the last one in between.
"""

import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import CharTransformer, load_tfjs_weights, parameter_count, resnet20  # noqa: E402


def build(model_name):
    if model_name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    if model_name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
        )
    if model_name == "transformer":
        return CharTransformer()
    if model_name == "resnet20":
        return resnet20()
    raise ValueError(f"unknown model {model_name}")


VOCAB, CONTEXT = 96, 64


def batch_for(model_name, batch):
    """Inputs and integer targets: token ids (targets over every position) for the
    transformer, [batch, 1, 28, 28] images and 10 classes otherwise."""
    if model_name == "transformer":
        return (torch.randint(0, VOCAB, (batch, CONTEXT)), torch.randint(0, VOCAB, (batch, CONTEXT)))
    return torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))


def loss_of(model, x, y):
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


class AdaHessian(torch.optim.Optimizer):
    """The official update; call step() after loss.backward(create_graph=True) on Hessian steps."""

    def __init__(self, params, lr=0.15, betas=(0.9, 0.999), eps=1e-4, weight_decay=0.0,
                 hessian_power=1.0, update_each=1):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      hessian_power=hessian_power))
        self.update_each = update_each
        self.steps = 0

    def hessian_due(self):
        return self.steps % self.update_each == 0

    def params(self):
        return [p for group in self.param_groups for p in group["params"] if p.requires_grad]

    def get_trace(self, params, grads):
        """Hutchinson with one Rademacher probe; conv kernels averaged over kh, kw."""
        zs = [2 * torch.randint_like(p, high=2) - 1 for p in params]
        hvs = torch.autograd.grad(grads, params, grad_outputs=zs, only_inputs=True,
                                  retain_graph=False)
        traces = []
        for hv in hvs:
            if hv.dim() <= 2:
                traces.append(torch.abs(hv))
            else:
                traces.append(torch.mean(torch.abs(hv), dim=[2, 3], keepdim=True))
        return traces

    def step(self):
        params = self.params()
        hessian_step = self.hessian_due()
        traces = self.get_trace(params, [p.grad for p in params]) if hessian_step else None
        self.steps += 1
        with torch.no_grad():
            for i, p in enumerate(params):
                group = self.param_groups[0]
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["hessian_step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_hessian_diag_sq"] = torch.zeros_like(p)
                exp_avg, exp_hessian_diag_sq = state["exp_avg"], state["exp_hessian_diag_sq"]
                beta1, beta2 = group["betas"]
                state["step"] += 1
                exp_avg.mul_(beta1).add_(p.grad.detach(), alpha=1 - beta1)
                if traces is not None:
                    # v moves only when a new diagonal arrives (no stale D fed in again).
                    state["hessian_step"] += 1
                    exp_hessian_diag_sq.mul_(beta2).addcmul_(traces[i], traces[i], value=1 - beta2)
                bias_correction1 = 1 - beta1 ** state["step"]
                bias_correction2 = 1 - beta2 ** state["hessian_step"]
                k = group["hessian_power"]
                denom = ((exp_hessian_diag_sq.sqrt() ** k) / math.sqrt(bias_correction2) ** k).add_(
                    group["eps"])
                step_size = group["lr"] / bias_correction1
                p.data = p.data - step_size * (exp_avg / denom + group["weight_decay"] * p.data)


# As in step.ts: below the paper's 0.15, which makes this benchmark's loss diverge.
ADAHESSIAN_LR = 0.005


def make_optimizer(name, params):
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01)
    if name == "adam":
        return torch.optim.Adam(params, lr=0.001)
    if name == "adahessian-f1":
        return AdaHessian(params, lr=ADAHESSIAN_LR, update_each=1)
    if name == "adahessian-f5":
        return AdaHessian(params, lr=ADAHESSIAN_LR, update_each=5)
    raise ValueError(f"unknown optimizer {name}")


class Setup:
    def __init__(self, model_name, opt_name, batch):
        torch.manual_seed(1)
        self.model = build(model_name)
        self.model.train()
        self.x, self.y = batch_for(model_name, batch)
        self.opt = make_optimizer(opt_name, self.model.parameters())
        self.second_order = opt_name.startswith("adahessian")

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        loss = loss_of(self.model, self.x, self.y)
        if self.second_order and self.opt.hessian_due():
            loss.backward(create_graph=True)
        else:
            loss.backward()
        self.opt.step()
        return loss


def blas_library():
    """The BLAS library this process mapped: Debian's torch links the reference BLAS (about
    10x slower matmuls) unless libopenblas0-pthread is installed."""
    torch.ones(2, 2) @ torch.ones(2, 2)
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "blas" in line.split()[-1]}
    return sorted(paths)


def check(req):
    """The loss of the twin with the TF.js model's weights on the TF.js batch (training mode,
    so batch norm uses the batch's moments as ours does with training: true)."""
    model = build(req["check"])
    load_tfjs_weights(model, req["weights"])
    model.train()
    if req["check"] == "transformer":
        x = torch.tensor(req["x"], dtype=torch.long).reshape(req["xShape"])
    else:  # NHWC -> NCHW
        x = torch.tensor(req["x"], dtype=torch.float32).reshape(req["xShape"]).permute(0, 3, 1, 2)
    y = torch.tensor(req["y"], dtype=torch.long)
    with torch.no_grad():
        return {"loss": float(loss_of(model, x, y))}


def main():
    setups = {}
    # Requests: {"threads"}, {"count"}, {"check"}, {"prepare", model, optimizer, batch,
    # warmup, calibrate}, and timed steps {model, optimizer, batch, steps}.
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("threads"):
            torch.set_num_threads(int(req["threads"]))
            print(json.dumps({"threads": torch.get_num_threads(), "version": torch.__version__,
                              "blas": blas_library()}), flush=True)
            continue
        if req.get("count"):
            print(json.dumps({"parameters": parameter_count(build(req["count"]))}), flush=True)
            continue
        if req.get("check"):
            print(json.dumps(check(req)), flush=True)
            continue
        key = (req["model"], req["optimizer"])
        if req.get("prepare"):
            # step.ts's warm-up (untimed) and calibration: ms per step over `calibrate` steps.
            if key not in setups:
                setups[key] = Setup(req["model"], req["optimizer"], req["batch"])
            s = setups[key]
            for _ in range(req["warmup"]):
                s.step()
            t0 = time.perf_counter()
            for _ in range(req["calibrate"]):
                loss = s.step()
            float(loss)
            print(json.dumps({"ms": (time.perf_counter() - t0) * 1000 / req["calibrate"]}), flush=True)
            continue
        if key not in setups:
            setups[key] = Setup(req["model"], req["optimizer"], req["batch"])
            for _ in range(req.get("warmup", 2)):
                setups[key].step()
        s = setups[key]
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        c0 = time.process_time()
        t0 = time.perf_counter()
        for _ in range(req["steps"]):
            loss = s.step()
        float(loss)
        ms = (time.perf_counter() - t0) * 1000 / req["steps"]
        cpu_ms = (time.process_time() - c0) * 1000 / req["steps"]
        # Minor page faults per step: memory the allocator gave back and faults in again.
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / req["steps"]
        print(json.dumps({"ms": ms, "cpu_ms": cpu_ms, "faults": faults}), flush=True)


if __name__ == "__main__":
    main()
