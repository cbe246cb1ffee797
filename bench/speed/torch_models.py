"""PyTorch twins of src/models' char transformer and ResNet-20, for bench/speed/torch_step.py
and torch_memory.py: the same architecture, sizes and parameter order as the TF.js models, so
that load_tfjs_weights can copy a TF.js model's weights into a twin and the harness can check
that both compute the same loss on the same batch.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    """src/models/causal-self-attention.ts: q, k, v, o projections with biases; the mask is a
    -1e9 constant added to the scaled scores (not masked_fill), as ours."""

    def __init__(self, d, heads, context):
        super().__init__()
        self.heads = heads
        # Parameter order as TF.js's addWeight calls: query, key, value, output (kernel, bias).
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.output = nn.Linear(d, d)
        mask = torch.triu(torch.full((context, context), -1e9), diagonal=1)
        self.register_buffer("mask", mask)

    def forward(self, x):
        b, t, d = x.shape
        hs = d // self.heads

        def split(y):
            return y.view(b, t, self.heads, hs).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) * (1 / math.sqrt(hs)) + self.mask[:t, :t]
        context = torch.softmax(scores, dim=-1) @ v
        return self.output(context.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-LN: x + attention(LN(x)); x + Dense(d)(gelu(Dense(ff)(LN(x)))). tf.layers'
    layerNormalization has epsilon 1e-3 and 'gelu' is the exact erf form."""

    def __init__(self, d, heads, ff, context):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, eps=1e-3)
        self.attention = CausalSelfAttention(d, heads, context)
        self.ln2 = nn.LayerNorm(d, eps=1e-3)
        self.mlp_hidden = nn.Linear(d, ff)
        self.mlp_out = nn.Linear(ff, d)

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.mlp_out(F.gelu(self.mlp_hidden(self.ln2(x))))


class PositionEmbedding(nn.Module):
    """A submodule, so that named_parameters lists the table after the token embedding (a
    module's own parameters come before its submodules')."""

    def __init__(self, context, d):
        super().__init__()
        self.table = nn.Parameter(torch.randn(context, d) * 0.02)

    def forward(self, x):
        return x + self.table


class CharTransformer(nn.Module):
    """src/models/char-transformer.ts at its defaults: learned position table, untied logits."""

    def __init__(self, vocab=96, context=64, d=64, heads=2, layers=2, ff=128):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, d)
        self.position_embedding = PositionEmbedding(context, d)
        self.blocks = nn.ModuleList([Block(d, heads, ff, context) for _ in range(layers)])
        self.final_ln = nn.LayerNorm(d, eps=1e-3)
        self.logits = nn.Linear(d, vocab)

    def forward(self, ids):
        x = self.position_embedding(self.token_embedding(ids))
        for block in self.blocks:
            x = block(x)
        return self.logits(self.final_ln(x))


def conv3x3_same(cin, cout, stride):
    """TF's 'same' padding: for stride 2 on an even size it pads one row and column at the
    bottom and right only (PyTorch's padding=1 would pad both sides and shift the grid)."""
    if stride == 1:
        return nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
    return nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(cin, cout, 3, stride, 0, bias=False))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = conv3x3_same(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1)
        self.conv2 = conv3x3_same(cout, cout, 1)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1)
        self.pad = cout - cin
        self.stride = stride

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1 or self.pad:
            # Option A: pixels (s i, s j) of the input, zero channels appended.
            shortcut = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.pad))
        return F.relu(out + shortcut)


def resnet20(width=16, n=3, channels=1, classes=10):
    """src/models/resnet20.ts: batch norm eps 1e-3, option A shortcuts, no conv biases."""
    layers = [conv3x3_same(channels, width, 1), nn.BatchNorm2d(width, eps=1e-3), nn.ReLU()]
    cin = width
    for stage, cout in enumerate([width, 2 * width, 4 * width]):
        for b in range(n):
            layers.append(ResBlock(cin, cout, 2 if stage > 0 and b == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def parameter_count(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def load_tfjs_weights(model, weights):
    """Copies TF.js trainable weights ([{shape, values}] in model.trainableWeights order) into
    `model`'s parameters, in order: dense kernels [in, out] -> Linear weights [out, in], conv
    kernels [kh, kw, in, out] -> [out, in, kh, kw]. Raises on any shape mismatch."""
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    if len(params) != len(weights):
        raise ValueError(f"{len(weights)} TF.js weights for {len(params)} parameters")
    with torch.no_grad():
        for (name, p), w in zip(params, weights):
            t = torch.tensor(w["values"], dtype=torch.float32).reshape(w["shape"])
            if t.dim() == 4:
                t = t.permute(3, 2, 0, 1)
            elif id(p) in linear_weights:
                t = t.t()
            if tuple(t.shape) != tuple(p.shape):
                raise ValueError(f"{name}: TF.js shape {w['shape']} vs {tuple(p.shape)}")
            p.copy_(t)
