"""Semantic-aware Embedding Module."""

from deepspg_basicsr.archs.sem_block import SemanticEmbeddingModule

import torch


def test_output_shape_with_mismatched_semantic_size():
    torch.manual_seed(0)
    sem = SemanticEmbeddingModule(channels=16, sem_channels=48, num_heads=2)
    x = torch.rand(2, 16, 37, 53)
    for size in [(10, 14), (37, 53), (80, 120)]:
        assert sem(x, torch.rand(2, 48, *size)).shape == x.shape


def test_output_depends_on_semantic_input():
    torch.manual_seed(0)
    sem = SemanticEmbeddingModule(channels=16, sem_channels=8, num_heads=2)
    x = torch.rand(1, 16, 20, 20)
    s1, s2 = torch.rand(1, 8, 5, 5), torch.rand(1, 8, 5, 5)
    assert not torch.allclose(sem(x, s1), sem(x, s2), atol=1e-5)
    # and the gradient w.r.t. the semantic features is non-zero
    s1.requires_grad_(True)
    sem(x, s1).sum().backward()
    assert s1.grad.abs().sum() > 0


def test_zero_init_is_exact_identity_and_still_trainable():
    torch.manual_seed(0)
    sem = SemanticEmbeddingModule(channels=8, sem_channels=4, zero_init=True)
    x = torch.rand(1, 8, 12, 12)
    out = sem(x, torch.rand(1, 4, 3, 3))
    assert torch.equal(out, x)
    out.square().sum().backward()
    assert sem.attn.project_out.weight.grad.abs().sum() > 0
    assert sem.ffn.project_out.weight.grad.abs().sum() > 0


def _flops(sem, side):
    """FLOPs of one forward of ``sem`` (8 channels, 4 semantic) on a side x side image."""
    from torch.utils.flop_counter import FlopCounterMode

    x, s = torch.rand(1, 8, side, side), torch.rand(1, 4, side, side)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        sem(x, s)
    return counter.get_total_flops()


def test_attention_cost_is_linear_in_pixels():
    """Counted, not timed: four times the pixels cost exactly four times the FLOPs (channel
    attention: a (C/h x C/h) matrix per head; every other layer is a per-pixel convolution).

    Fails if the attention mixes pixels instead of channels (``attn = q.transpose(-2, -1) @ k``, an
    (HW x HW) matrix: tried, 13x the FLOPs for 4x the pixels)."""
    torch.manual_seed(0)
    for spatial in (True, False):
        sem = SemanticEmbeddingModule(channels=8, sem_channels=4, num_heads=2, spatial=spatial).eval()
        small, large = _flops(sem, 16), _flops(sem, 32)
        assert small > 0 and large == 4 * small, (spatial, small, large)


def _local_share(spatial):
    """Share of the output change that stays near the place where the semantics changed."""
    torch.manual_seed(0)
    sem = SemanticEmbeddingModule(channels=8, sem_channels=4, spatial=spatial)
    if spatial:  # as after training: the zero-initialised modulation has learnt something
        torch.nn.init.normal_(sem.modulation.weight, std=0.5)
    x, s = torch.rand(1, 8, 16, 16), torch.rand(1, 4, 16, 16)
    s2 = s.clone()
    s2[..., 6:10, 6:10] += 1.0
    with torch.no_grad():
        change = (sem(x, s2) - sem(x, s)).abs().sum(1)[0]
    return (change[5:11, 5:11].sum() / change.sum()).item()  # the FFN's 3x3 conv spreads it one pixel


def test_spatial_path_brings_what_the_semantics_say_about_a_place_to_that_place():
    # 36 of the 256 pixels (14 %) are near the change. The published block (channel attention only)
    # spreads a local change of the semantics over the whole image (one mixing matrix per head);
    # the spatial path keeps it where it was. Measured: 0.15 and 0.99.
    assert _local_share(spatial=False) < 0.3
    assert _local_share(spatial=True) > 0.8


def test_spatial_path_starts_as_identity_and_can_be_left_out():
    sem = SemanticEmbeddingModule(channels=8, sem_channels=4)
    assert torch.count_nonzero(sem.modulation.weight) == 0 and torch.count_nonzero(sem.modulation.bias) == 0
    published = SemanticEmbeddingModule(channels=8, sem_channels=4, spatial=False)
    assert not any(k.startswith('modulation') for k in published.state_dict())
    assert set(sem.state_dict()) - set(published.state_dict()) == {'modulation.weight', 'modulation.bias'}


def test_projecting_before_the_resize_is_the_published_order_up_to_rounding():
    # project-then-resize (the default when sem_channels >= channels) against resize-then-project
    torch.manual_seed(0)
    sem = SemanticEmbeddingModule(channels=16, sem_channels=48, num_heads=2, bias=True)
    torch.nn.init.normal_(sem.modulation.weight, std=0.1)  # spatial path on, so the projection reaches the output
    torch.nn.init.normal_(sem.sem_proj.bias, std=0.5)  # a bias survives the resize unchanged (weights sum to 1)
    x = torch.rand(1, 16, 37, 53)
    assert sem.project_first
    for size in [(10, 14), (19, 27), (80, 120)]:  # up-, odd and down-sampling
        s = torch.randn(1, 48, *size)
        fast = sem(x, s)
        sem.project_first = False
        slow = sem(x, s)
        sem.project_first = True
        assert (fast - slow).abs().max() < 1e-5
        assert not torch.equal(sem(x, s), sem(x, torch.randn(1, 48, *size)))
    # narrower semantics than image features: the resize stays first
    assert not SemanticEmbeddingModule(channels=16, sem_channels=8).project_first
