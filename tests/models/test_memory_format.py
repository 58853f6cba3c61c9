import torch

from evdet.models.memory_format import channels_last


def test_a_frame_sliced_from_a_stack_gets_the_canonical_strides():
    h = torch.randn(1, 5, 7, 8).permute(0, 3, 1, 2)  # [1, 8, 5, 7], channels-last values
    frame = torch.stack([h, h])[0]
    # torch calls it channels-last contiguous although dim 0's stride is not C*H*W (it addresses nothing)
    assert frame.is_contiguous(memory_format=torch.channels_last) and frame.stride() == (8, 1, 56, 8)
    assert frame.contiguous(memory_format=torch.channels_last).stride() == (8, 1, 56, 8)
    out = channels_last(frame)
    assert out.stride() == (280, 1, 56, 8) and torch.equal(out, frame)


def test_canonical_input_is_returned_itself_and_channels_first_is_converted():
    x = torch.randn(2, 3, 4, 5)
    out = channels_last(x)
    assert out.stride() == (60, 1, 15, 3) and torch.equal(out, x)
    assert channels_last(out) is out
    scripted = torch.jit.script(channels_last)
    assert scripted(x).stride() == (60, 1, 15, 3) and torch.equal(scripted(x), x)
