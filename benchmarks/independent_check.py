"""Independent check of the image comparison: the method and SIREN in plain PyTorch, no inrkit code.

Issue 2's target (+8 dB over SIREN at 12,000 parameters in 60 s) comes from
a separate 100-line script of the method. This is such a script, written from
METHOD.md and the SIREN paper alone, with ``torch.optim.Adam`` and autograd:
if it lands where inrkit's own benchmark lands (``image_fit.py``), the gap to
the target is in the comparison, not in inrkit's trainer or its SIREN.

Usage::

    python benchmarks/independent_check.py --seconds 60 datasets/camera-128.png datasets/astronaut-128.png
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from PIL import Image


def load(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel centres in [-1, 1]^2 and values in [-1, 1] (SIREN's convention), channels last."""
    pixels = np.asarray(Image.open(path), dtype=np.float32) / 255.0
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    h, w, _ = pixels.shape
    rows, cols = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack([rows, cols], -1).reshape(-1, 2), torch.from_numpy(pixels).reshape(h * w, -1) * 2 - 1


class Siren(torch.nn.Module):
    """First sine layer with omega0, ``layers`` hidden sine layers, linear head; the paper's initialisation."""

    def __init__(self, width: int, layers: int, channels: int, omega0: float = 30.0):
        super().__init__()
        self.omega0 = omega0
        self.linears = torch.nn.ModuleList([torch.nn.Linear(2, width)] + [torch.nn.Linear(width, width) for _ in range(layers)])
        self.head = torch.nn.Linear(width, channels)
        with torch.no_grad():
            self.linears[0].weight.uniform_(-1 / 2, 1 / 2)
            for layer in [*self.linears[1:], self.head]:
                bound = math.sqrt(6 / width) / omega0
                layer.weight.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.linears:
            x = torch.sin(self.omega0 * layer(x))
        return self.head(x)


class Lattice(torch.nn.Module):
    """sin of frozen integer frequencies (period 4), one sine layer with |30 W_ij| <= c_j, linear head."""

    def __init__(self, m: int, n: int, channels: int, bandlimit: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        low = max(1, bandlimit // 3)
        half_space = lambda f: (f[:, 0] > 0) | ((f[:, 0] == 0) & (f[:, 1] > 0))  # noqa: E731
        grid = lambda b: torch.cartesian_prod(torch.arange(-b, b + 1), torch.arange(-b, b + 1))  # noqa: E731
        dense = grid(low)[half_space(grid(low))]
        wide = grid(bandlimit)
        wide = wide[half_space(wide) & (wide.abs().max(1).values > low)]
        n_low = min(len(dense), int(0.7 * m))
        picks = [torch.tensor([[1, 0], [0, 1]]), dense[torch.randperm(len(dense), generator=g)[:n_low]]]
        picks.append(wide[torch.randperm(len(wide), generator=g)[: m - n_low]])
        freqs = torch.unique(torch.cat(picks), dim=0)[:m].float()
        self.register_buffer("omega", freqs * 2 * math.pi / 4)
        self.register_buffer("bound", torch.where(freqs.abs().max(1).values <= low, 1.0, 0.6))
        self.phase = torch.nn.Parameter((torch.rand(len(freqs), generator=g) - 0.5) * math.pi)
        self.hidden = torch.nn.Linear(len(freqs), n)
        self.head = torch.nn.Linear(n, channels)
        with torch.no_grad():
            limit = math.sqrt(6 / len(freqs)) / 30
            self.hidden.weight.uniform_(-limit, limit)
            self.head.weight.uniform_(-math.sqrt(6 / n) / 30, math.sqrt(6 / n) / 30)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.sin(30 * self.hidden(torch.sin(x @ self.omega.T + self.phase))))

    @torch.no_grad()
    def project(self) -> None:
        limit = self.bound / 30
        self.hidden.weight.copy_(torch.maximum(torch.minimum(self.hidden.weight, limit), -limit))


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, seconds: float, decay: bool) -> tuple[int, float]:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start, steps = time.perf_counter(), 0
    while (elapsed := time.perf_counter() - start) < seconds:
        for group in opt.param_groups:
            group["lr"] = lr * (0.1 ** (elapsed / seconds) if decay else 1.0)
        loss = torch.mean((model(x) - y) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if hasattr(model, "project"):
            model.project()
        steps += 1
    with torch.no_grad():
        mse = float(torch.mean((model(x) - y) ** 2))
    return steps, 10 * math.log10(4.0 / mse)  # peak-to-peak 2 on [-1, 1] = 255 on [0, 255]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    torch.manual_seed(0)
    print("| image | model | params | steps | PSNR |\n|---|---|---|---|---|")
    for path in args.images:
        x, y = load(path)
        c = y.shape[1]
        width = max(w for w in range(8, 200) if 2 * w + w + 3 * (w * w + w) + w * c + c <= 12000)
        n = max(k for k in range(8, 200) if 3 * k + k * k + k + k * c + c <= 12000)  # m = n, frequencies stored
        bandlimit = 42  # Nyquist/3 for 128 px at period 4
        for name, model, lr, decay in [("SIREN 3 hidden, lr 1e-4", Siren(width, 3, c), 1e-4, False),
                                       ("method, lr 2e-3 decaying", Lattice(n, n, c, bandlimit), 2e-3, True)]:
            count = sum(p.numel() for p in model.parameters())
            if isinstance(model, Lattice):
                count += model.omega.numel()  # the frozen frequencies are stored too
            steps, quality = train(model, x, y, lr, args.seconds, decay)
            print(f"| {path.rsplit('/', 1)[-1]} | {name} | {count} | {steps} | {quality:.2f} |", flush=True)


if __name__ == "__main__":
    main()
