"""A SEGNN training step on a QM9 batch, built from e3nn's parts, timed like
`equivar bench --segnn-step` (same batch file, same network shape, same step: forward, L1 loss,
backward, Adam update; float32, 2 threads, medians). One JSON line per case.

The network follows SEGNN's QM9 model (Brandstetter et al. 2022) as equivar builds it: products
with the attributes are e3nn FullyConnectedTensorProducts plus a bias on the 0e outputs;
gates are e3nn Gates (SiLU on scalars, sigmoid gates); instance norm is SEGNN's (per graph,
written here with index_add: e3nn's BatchNorm(instance=True) needs graphs of equal size); mean
pooling. Its parameter count is printed to compare with
equivar's.

Usage: python bench/segnn_step.py bench/qm9-batch-32.json [repeats]
"""
import json
import statistics
import sys
import time

import torch
from e3nn import o3
from e3nn.nn import Gate

torch.set_num_threads(2)
torch.manual_seed(0)

CASES = [("quick_l1", "24x0e+8x1o", 1, 4), ("paper_l2", "36x0e+36x1o+36x2e", 3, 7)]
ELEMENTS = [1, 6, 7, 8, 9]


class AttributeProduct(torch.nn.Module):
    def __init__(self, irreps_in, irreps_attr, irreps_out):
        super().__init__()
        self.tp = o3.FullyConnectedTensorProduct(irreps_in, irreps_attr, irreps_out)
        out = o3.Irreps(irreps_out)
        index = [i for (mul, ir), sl in zip(out, out.slices()) if ir == o3.Irrep("0e")
                 for i in range(sl.start, sl.stop)]
        self.register_buffer("index", torch.tensor(index, dtype=torch.long))
        self.bias = torch.nn.Parameter(torch.zeros(len(index)))

    def forward(self, x, attr):
        y = self.tp(x, attr)
        if len(self.index):
            y = y.index_add(1, self.index, self.bias.expand(y.shape[0], -1))
        return y


class GatedProduct(torch.nn.Module):
    def __init__(self, irreps_in, irreps_attr, irreps_out):
        super().__init__()
        out = o3.Irreps(irreps_out)
        scalars = o3.Irreps([(m, ir) for m, ir in out if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in out if ir.l > 0])
        gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else o3.Irreps("")
        self.gate = Gate(scalars, [torch.nn.functional.silu] * len(scalars), gates,
                         [torch.sigmoid] * len(gates), gated)
        self.product = AttributeProduct(irreps_in, irreps_attr, self.gate.irreps_in)
        self.irreps_out = self.gate.irreps_out

    def forward(self, x, attr):
        return self.gate(self.product(x, attr))


def scatter_sum(values, index, n):
    return torch.zeros(n, values.shape[1], dtype=values.dtype).index_add(0, index, values)


def scatter_mean(values, index, n):
    counts = torch.zeros(n).index_add(0, index, torch.ones(index.shape[0])).clamp(min=1)
    return scatter_sum(values, index, n) / counts[:, None]


class InstanceNorm(torch.nn.Module):
    """Per graph: 0e channels minus their mean; every channel over the root of its mean square
    (mean over components and nodes); a weight per channel, a bias per 0e channel."""

    def __init__(self, irreps):
        super().__init__()
        self.irreps = o3.Irreps(irreps)
        self.weight = torch.nn.Parameter(torch.ones(self.irreps.num_irreps))
        self.bias = torch.nn.Parameter(torch.zeros(sum(m for m, ir in self.irreps if ir == o3.Irrep("0e"))))

    def forward(self, x, graph, graphs):
        parts, copy, scalar = [], 0, 0
        for (mul, ir), sl in zip(self.irreps, self.irreps.slices()):
            field = x[:, sl].reshape(-1, mul, ir.dim)
            if ir == o3.Irrep("0e"):
                field = field - scatter_mean(field.reshape(-1, mul), graph, graphs)[graph][:, :, None]
            norm = scatter_mean(field.pow(2).mean(2), graph, graphs)[graph]
            y = field * ((norm + 1e-5).rsqrt() * self.weight[copy:copy + mul])[:, :, None]
            if ir == o3.Irrep("0e"):
                y = y + self.bias[scalar:scalar + mul][None, :, None]
                scalar += mul
            copy += mul
            parts.append(y.reshape(-1, mul * ir.dim))
        return torch.cat(parts, 1)


class Segnn(torch.nn.Module):
    def __init__(self, hidden, lmax_attr, layers):
        super().__init__()
        hidden = o3.Irreps(hidden)
        self.sh = o3.SphericalHarmonics(o3.Irreps.spherical_harmonics(lmax_attr), True, "component")
        attr = self.sh.irreps_out
        self.embedding = AttributeProduct("5x0e", attr, hidden)
        self.layers = torch.nn.ModuleList()
        for _ in range(layers):
            layer = torch.nn.Module()
            layer.message1 = GatedProduct(hidden + hidden + o3.Irreps("1x0e"), attr, hidden)
            layer.message2 = GatedProduct(layer.message1.irreps_out, attr, hidden)
            layer.update1 = GatedProduct(hidden + layer.message2.irreps_out, attr, hidden)
            layer.update2 = AttributeProduct(layer.update1.irreps_out, attr, hidden)
            layer.norm = InstanceNorm(hidden)
            self.layers.append(layer)
        scalars = o3.Irreps(f"{sum(m for m, ir in hidden if ir.l == 0)}x0e")
        self.pre_pool1 = GatedProduct(hidden, attr, hidden)
        self.pre_pool2 = AttributeProduct(self.pre_pool1.irreps_out, attr, scalars)
        self.post_pool1 = GatedProduct(scalars, "1x0e", scalars)
        self.post_pool2 = AttributeProduct(scalars, "1x0e", "1x0e")

    def forward(self, pos, features, graph, graphs, source, target):
        n = pos.shape[0]
        vectors = pos[source] - pos[target]
        edge_attr = self.sh(vectors)
        distance = vectors.pow(2).sum(1, keepdim=True)
        node_attr = scatter_mean(edge_attr, target, n)
        h = self.embedding(features, node_attr)
        for layer in self.layers:
            m = layer.message1(torch.cat([h[target], h[source], distance], 1), edge_attr)
            m = layer.message2(m, edge_attr)
            u = layer.update1(torch.cat([h, scatter_sum(m, target, n)], 1), node_attr)
            u = layer.update2(u, node_attr)
            h = layer.norm(h + u, graph, graphs)
        h = self.pre_pool2(self.pre_pool1(h, node_attr), node_attr)
        pooled = scatter_mean(h, graph, graphs)
        ones = torch.ones(graphs, 1)
        return self.post_pool2(self.post_pool1(pooled, ones), ones)


def main():
    path = sys.argv[1]
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    molecules = json.load(open(path))["molecules"]
    pos, features, graph, source, target = [], [], [], [], []
    for g, m in enumerate(molecules):
        start = len(pos)
        for z, p in zip(m["z"], m["pos"]):
            pos.append(p)
            features.append([1.0 if e == z else 0.0 for e in ELEMENTS])
            graph.append(g)
        # Radius graph (2 angstrom) within the molecule, both directions, no self loops.
        x = torch.tensor(m["pos"])
        d = torch.cdist(x, x)
        i, j = torch.nonzero((d < 2.0) & ~torch.eye(len(x), dtype=torch.bool), as_tuple=True)
        target += (i + start).tolist()
        source += (j + start).tolist()
    pos = torch.tensor(pos)
    features = torch.tensor(features)
    graph = torch.tensor(graph)
    source, target = torch.tensor(source), torch.tensor(target)
    y = torch.tensor([[m["alpha"] / 75.0] for m in molecules])
    for case, hidden, lmax_attr, layers in CASES:
        net = Segnn(hidden, lmax_attr, layers)
        optim = torch.optim.Adam(net.parameters(), lr=1e-4)

        def step():
            optim.zero_grad()
            loss = (net(pos, features, graph, len(molecules), source, target) - y).abs().mean()
            loss.backward()
            optim.step()

        for _ in range(2):
            step()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        print(json.dumps({
            "bench": "e3nn_segnn", "case": case, "hidden": hidden, "lmax_attr": lmax_attr,
            "layers": layers, "molecules": len(molecules), "atoms": len(pos),
            "edges": len(source), "params": sum(p.numel() for p in net.parameters()),
            "step_ms": 1e3 * statistics.median(times), "repeats": repeats,
            "torch": torch.__version__,
        }))


if __name__ == "__main__":
    main()
