import torch

from inrkit.optim import Adam


def _step_both(pairs, x, y):
    for model, optimizer in pairs:
        optimizer.zero_grad()
        torch.mean((model(x) - y) ** 2).backward()
        optimizer.step()


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
        _step_both(((a, ours), (b, reference)), x, y)
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


def test_scaled_tensors_and_beta2_match_torch_parameter_groups():
    torch.manual_seed(1)
    a = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    b = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    b.load_state_dict(a.state_dict())
    ours = Adam([(a[0].weight, 10.0), a[0].bias, (a[2].weight, 0.5), a[2].bias], lr=1e-3, betas=(0.9, 0.99))
    reference = torch.optim.Adam([{"params": [b[0].weight], "lr": 1e-2}, {"params": [b[0].bias]},
                                  {"params": [b[2].weight], "lr": 5e-4}, {"params": [b[2].bias]}],
                                 lr=1e-3, betas=(0.9, 0.99))
    x, y = torch.randn(32, 3), torch.randn(32, 2)
    for _ in range(30):
        _step_both(((a, ours), (b, reference)), x, y)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6, rtol=1e-5)
