"""PyTorch side of test/optimizers/adahessian-delayed-pytorch.test.ts: a few AdaHessian steps of
a tiny conv net on weights, batches and Rademacher probes given by the test (JSON on stdin),
with two delayed-Hessian rules; prints the weights after every step (JSON on stdout).

- "update_each": davda54/ada-hessian's AdaHessian (the delayed update the official repository
  github.com/amirgholami/adahessian links from its README; its own released optimizers have
  none), copied below with only the probe source changed: the stored diagonal is fed into v on
  every step and v's bias correction counts every step t.
- "reuse": v and its bias-correction count n move only on Hessian steps, the last v_hat is
  reused in between (our rule; also bench/speed/torch_step.py's).

Layouts follow TF.js (NHWC input, conv kernel [kh, kw, in, out], dense kernel [in, out]), so the
weights travel without transposes. Runs in float32, like TF.js.
"""

import json
import sys

import torch
import torch.nn.functional as F


class UpdateEach(torch.optim.Optimizer):
    """davda54/ada-hessian ada_hessian.py (commit 5e1bebc), z taken from `probes`, v's update
    in a method of its own (second_moment) so that Reuse can change it alone."""

    def __init__(self, params, probes, lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 hessian_power=1.0, update_each=1, n_samples=1, average_conv_kernel=False):
        self.probes = iter(probes)
        self.n_samples = n_samples
        self.update_each = update_each
        self.average_conv_kernel = average_conv_kernel
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        hessian_power=hessian_power)
        super().__init__(params, defaults)
        for p in self.get_params():
            p.hess = 0.0
            self.state[p]["hessian step"] = 0

    def get_params(self):
        return (p for group in self.param_groups for p in group['params'] if p.requires_grad)

    def zero_hessian(self):
        for p in self.get_params():
            if not isinstance(p.hess, float) and self.state[p]["hessian step"] % self.update_each == 0:
                p.hess.zero_()

    @torch.no_grad()
    def set_hessian(self):
        params = []
        for p in filter(lambda p: p.grad is not None, self.get_params()):
            if self.state[p]["hessian step"] % self.update_each == 0:
                params.append(p)
            self.state[p]["hessian step"] += 1
        if len(params) == 0:
            return
        grads = [p.grad for p in params]
        for i in range(self.n_samples):
            zs = next(self.probes)  # the original draws them from its own torch.Generator
            h_zs = torch.autograd.grad(grads, params, grad_outputs=zs, only_inputs=True,
                                       retain_graph=i < self.n_samples - 1)
            for h_z, z, p in zip(h_zs, zs, params):
                p.hess += h_z * z / self.n_samples

    def hessian_due(self):
        p = next(self.get_params())
        return self.state[p]["hessian step"] % self.update_each == 0

    @torch.no_grad()
    def step(self, closure=None):
        self.zero_hessian()
        self.set_hessian()
        for group in self.param_groups:
            for p in group['params']:
                if p.grad is None or p.hess is None:
                    continue
                if self.average_conv_kernel and p.dim() == 4:
                    # Our kernels are [kh, kw, in, out]: the spatial axes are 0, 1 (PyTorch's 2, 3).
                    p.hess = torch.abs(p.hess).mean(dim=[0, 1], keepdim=True).expand_as(p.hess).clone()
                p.mul_(1 - group['lr'] * group['weight_decay'])
                state = self.state[p]
                if len(state) == 1:
                    state['step'] = 0
                    state['exp_avg'] = torch.zeros_like(p.data)
                    state['exp_hessian_diag_sq'] = torch.zeros_like(p.data)
                exp_avg, exp_hessian_diag_sq = state['exp_avg'], state['exp_hessian_diag_sq']
                beta1, beta2 = group['betas']
                state['step'] += 1
                exp_avg.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                bias_correction1 = 1 - beta1 ** state['step']
                bias_correction2 = self.second_moment(state, p, beta2)  # (inlined in the original)
                k = group['hessian_power']
                denom = (exp_hessian_diag_sq / bias_correction2).pow_(k / 2).add_(group['eps'])
                step_size = group['lr'] / bias_correction1
                p.addcdiv_(exp_avg, denom, value=-step_size)

    def second_moment(self, state, p, beta2):
        """Feeds the stored diagonal into v; returns v's bias correction, counted in steps."""
        state['exp_hessian_diag_sq'].mul_(beta2).addcmul_(p.hess, p.hess, value=1 - beta2)
        return 1 - beta2 ** state['step']


class Reuse(UpdateEach):
    """The same, except that v and its bias-correction count n move only on Hessian steps."""

    @torch.no_grad()
    def step(self, closure=None):
        self.hessian_now = self.hessian_due()
        super().step(closure)

    def second_moment(self, state, p, beta2):
        state.setdefault('n', 0)
        if self.hessian_now:
            state['n'] += 1
            state['exp_hessian_diag_sq'].mul_(beta2).addcmul_(p.hess, p.hess, value=1 - beta2)
        return 1 - beta2 ** state['n']


def tensor(t):
    return torch.tensor(t["data"], dtype=torch.float32).reshape(t["shape"])


def logits(params, x):
    conv_kernel, conv_bias, dense_kernel, dense_bias = params
    # NHWC -> NCHW and [kh, kw, in, out] -> [out, in, kh, kw] for F.conv2d, then back to NHWC so
    # that flattening takes TF.js's (h, w, c) order.
    h = F.conv2d(x.permute(0, 3, 1, 2), conv_kernel.permute(3, 2, 0, 1), conv_bias, padding=1)
    h = F.relu(h).permute(0, 2, 3, 1).reshape(x.shape[0], -1)
    return h @ dense_kernel + dense_bias


def run(req, rule):
    params = [tensor(w).requires_grad_() for w in req["weights"]]
    probes = [[tensor(z) for z in probe] for probe in req["probes"]]
    cls = UpdateEach if rule == "update_each" else Reuse
    opt = cls(params, probes, lr=req["lr"], eps=1e-4, update_each=req["f"],
              average_conv_kernel=True)
    out = []
    for batch in req["batches"]:
        opt.zero_grad(set_to_none=True)
        x, y = tensor(batch["x"]), tensor(batch["y"])
        loss = torch.mean(-torch.sum(y * F.log_softmax(logits(params, x), dim=-1), dim=-1))
        loss.backward(create_graph=opt.hessian_due())
        opt.step()
        out.append([p.detach().reshape(-1).tolist() for p in params])
    return out


def main():
    req = json.loads(sys.stdin.read())
    print(json.dumps({rule: run(req, rule) for rule in ("update_each", "reuse")}))


if __name__ == "__main__":
    main()
