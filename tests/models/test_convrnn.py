import pytest
import torch

from evdet.models import ConvGRU, ConvLSTM

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")]

def _graph_size(t: torch.Tensor) -> int:
    seen, todo = set(), [t.grad_fn]
    while todo:
        f = todo.pop()
        if f is None or f in seen:
            continue
        seen.add(f)
        todo.extend(g for g, _ in f.next_functions)
    return len(seen)


@pytest.mark.parametrize("cell", [ConvLSTM, ConvGRU])
def test_chunk_equals_bin_by_bin(cell):
    torch.manual_seed(0)
    layer = cell(3, 5, 3, 2)
    x = torch.randn(4, 2, 3, 9, 11)
    whole = layer(x)
    assert whole.shape == (4, 2, 5, 5, 6)
    layer.reset_all()
    steps = torch.cat([layer(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(whole, steps, rtol=1e-5, atol=1e-6)
    # state carries over: running the chunk again from the kept state differs from a fresh start
    again = layer(x)
    assert not torch.allclose(again, whole)


@pytest.mark.parametrize("cell", [ConvLSTM, ConvGRU])
def test_reset_mask_zeroes_exactly_masked_columns_and_detaches(cell):
    torch.manual_seed(0)
    layer = cell(2, 4)
    x = torch.randn(2, 3, 2, 6, 6)
    layer(x)
    before = layer.prev_h.clone()
    assert layer.prev_h.grad_fn is not None
    layer.reset(torch.tensor([1.0, 0.0, 1.0]))
    assert layer.prev_h.grad_fn is None
    assert torch.equal(layer.prev_h[1], torch.zeros_like(before[1]))
    torch.testing.assert_close(layer.prev_h[[0, 2]], before[[0, 2]])
    if cell is ConvLSTM:
        assert torch.equal(layer.prev_c[1], torch.zeros_like(layer.prev_c[1]))
        assert layer.prev_c[0].abs().sum() > 0
    # reset column 1 == a fresh run for column 1
    out = layer(x)
    fresh = cell(2, 4)
    fresh.load_state_dict(layer.state_dict())
    torch.testing.assert_close(out[:, 1:2], fresh(x[:, 1:2]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", [ConvLSTM, ConvGRU])
def test_state_recreated_when_batch_or_size_changes(cell):
    layer = cell(2, 4)
    layer(torch.randn(1, 3, 2, 6, 6))
    out = layer(torch.randn(2, 2, 2, 6, 6))  # B changes
    assert out.shape == (2, 2, 4, 6, 6) and layer.prev_h.shape == (2, 4, 6, 6)
    layer.reset_all()
    assert layer.prev_h is None
    fresh = layer(torch.randn(1, 2, 2, 8, 10))  # H, W change
    assert fresh.shape == (1, 2, 4, 8, 10)
    layer.reset(torch.ones(5))  # mask of another batch size: state forgotten, no error
    assert layer.prev_h is None
    with pytest.raises(ValueError, match="expected Tensor"):
        layer(torch.randn(1, 2, 3, 8, 8))


@pytest.mark.parametrize("cell", [ConvLSTM, ConvGRU])
def test_no_graph_growth_over_100_batches(cell):
    torch.manual_seed(0)
    layer = cell(2, 4)
    opt = torch.optim.SGD(layer.parameters(), lr=1e-3)
    x = torch.randn(2, 2, 2, 4, 4)
    sizes = []
    for _ in range(100):
        layer.reset(torch.ones(2))  # the trainer's call at every batch: keep memory, cut the graph
        out = layer(x)
        sizes.append(_graph_size(out))
        opt.zero_grad()
        out.square().mean().backward()
        opt.step()
    assert sizes[1] == sizes[-1]  # graph does not grow with the number of batches
    # without detaching, the graph would grow: check that the measure can see it
    layer.reset_all()
    a = layer(x)
    b = layer(x)
    assert _graph_size(b) > _graph_size(a)


def test_scriptable():
    for layer in (ConvLSTM(2, 3, 3, 2), ConvGRU(2, 3, 3, 2)):
        x = torch.randn(2, 1, 2, 8, 8)
        s = torch.jit.script(layer)
        torch.testing.assert_close(s(x), layer(x))
        s.reset(torch.zeros(1))
        s.detach()
        s.reset_all()
