import torch

from inrkit.optim import Adam


def test_matches_torch_adam_step_for_step():
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    b = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    b.load_state_dict(a.state_dict())
    ours, reference = Adam(a.parameters(), lr=1e-2), torch.optim.Adam(b.parameters(), lr=1e-2)
    x, y = torch.randn(32, 3), torch.randn(32, 2)
    for step in range(40):
        lr = 1e-2 * 0.95**step
        ours.lr = lr
        for group in reference.param_groups:
            group["lr"] = lr
        for model, optimizer in ((a, ours), (b, reference)):
            optimizer.zero_grad()
            torch.mean((model(x) - y) ** 2).backward()
            optimizer.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(a[0].weight, torch.nn.Linear(3, 8).weight)


def test_parameters_without_gradient_are_left_alone():
    frozen = torch.zeros(3, requires_grad=True)
    moving = torch.zeros(3, requires_grad=True)
    optimizer = Adam([frozen, moving], lr=0.1)
    moving.sum().backward()
    optimizer.step()
    assert torch.equal(frozen, torch.zeros(3)) and (moving < 0).all()
