"""A short tour of the autograd engine: a scalar chain rule you can check by hand, broadcasting
undone in backward, a gradient check against finite differences, a hook, and a tiny MLP fitted
with AdamW. Runs in a few seconds.

    python examples/autograd_basics.py
"""
from __future__ import annotations

import numpy as np

from tinygrad_gpt import Tensor, gradcheck, nn, no_grad, optim


def chain_rule() -> None:
    # y = (a * b + b) ** 2  ->  dy/da = 2 (ab + b) b,  dy/db = 2 (ab + b) (a + 1)
    a = Tensor(3.0, requires_grad=True)
    b = Tensor(-2.0, requires_grad=True)
    y = (a * b + b) ** 2
    y.backward()
    print(f"y = {y.item():g}; dy/da = {a.grad:g} (by hand {2 * (3 * -2 - 2) * -2:g}); "
          f"dy/db = {b.grad:g} (by hand {2 * (3 * -2 - 2) * 4:g})")


def broadcasting() -> None:
    # a bias of shape (3,) added to every row of (4, 3): its gradient sums over the rows
    x = Tensor(np.ones((4, 3), dtype=np.float32))
    bias = Tensor(np.zeros(3, dtype=np.float32), requires_grad=True)
    (x + bias).sum().backward()
    print(f"bias.grad = {bias.grad} (each entry was used 4 times)")


def check_against_finite_differences() -> None:
    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(size=(3, 5)), requires_grad=True)      # float64 for the check
    w = Tensor(rng.normal(size=(5, 2)), requires_grad=True)
    ok = gradcheck(lambda x, w: (x @ w).tanh().softmax(-1), x, w)
    print(f"gradcheck of softmax(tanh(x @ w)) against central differences: {ok}")


def hooks() -> None:
    h = Tensor(np.array([1.0, -2.0, 3.0], dtype=np.float32), requires_grad=True)
    seen = []
    h.register_hook(lambda g: seen.append(g.copy()))
    (h.relu() * 10).sum().backward()
    print(f"the hook saw d/dh = {seen[0]} (relu passes the gradient only where h > 0)")


class MLP(nn.Module):
    def __init__(self, rng: np.random.Generator):
        self.fc1 = nn.Linear(1, 32, std=1.0, rng=rng)
        self.fc2 = nn.Linear(32, 1, std=0.1, rng=rng)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.fc1(x).tanh())


def fit_a_curve() -> None:
    rng = np.random.default_rng(0)
    xs = np.linspace(-3, 3, 128, dtype=np.float32)[:, None]
    ys = np.sin(xs) + 0.3 * xs
    model = MLP(rng)
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for step in range(501):
        loss = ((model(Tensor(xs)) - Tensor(ys)) ** 2).mean()
        model.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f"  step {step:3d}  mse {loss.item():.5f}")
    with no_grad():
        pred = model(Tensor(np.array([[1.0]], dtype=np.float32))).item()
    print(f"model(1.0) = {pred:.3f}, target sin(1) + 0.3 = {np.sin(1.0) + 0.3:.3f}; "
          f"{model.num_parameters()} parameters: {[n for n, _ in model.named_parameters()]}")


if __name__ == "__main__":
    chain_rule()
    broadcasting()
    check_against_finite_differences()
    hooks()
    print("fitting y = sin(x) + 0.3 x with a 1-32-1 tanh MLP:")
    fit_a_curve()
