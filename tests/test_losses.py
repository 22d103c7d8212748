"""Losses against hand computations."""

from deepspg_basicsr.losses import CLIPMultimodalLoss, SemanticKLLoss, SPGEdgeLoss, SPGPixelLoss, SPGPSNRLoss

import pytest
import torch
import torch.nn.functional as F


def test_pixel_loss_is_mse():
    pred = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    # squared errors 1, 0, 4, 9
    assert SPGPixelLoss()(pred, target).item() == pytest.approx(14 / 4)
    assert SPGPixelLoss(loss_weight=2.0, reduction='sum')(pred, target).item() == pytest.approx(28.0)
    assert SPGPixelLoss(reduction='none')(pred, target).flatten().tolist() == [1.0, 0.0, 4.0, 9.0]


def test_psnr_loss_is_each_images_negative_psnr():
    target = torch.zeros(2, 1, 2, 2)
    pred = torch.stack([torch.full((1, 2, 2), 0.1), torch.tensor([[[0.0, 0.0], [0.0, 0.2]]])])
    # image 0: MSE 0.01 -> -20 dB; image 1: MSE 0.04 / 4 = 0.01 -> -20 dB as well
    loss = SPGPSNRLoss(reduction='none', eps=0)(pred, target)
    assert loss.tolist() == pytest.approx([-20.0, -20.0])
    pred[1] = 0.01  # MSE 1e-4 -> -40 dB
    assert SPGPSNRLoss(eps=0)(pred, target).item() == pytest.approx(-30.0)
    assert SPGPSNRLoss(loss_weight=0.5, reduction='sum', eps=0)(pred, target).item() == pytest.approx(-30.0)
    # the mean of per-image values, as benchmarks average PSNR, not the PSNR of the mean error (-22.97 dB)
    assert 10 * torch.log10(((pred - target) ** 2).mean()).item() == pytest.approx(-22.97, abs=0.01)


def test_edge_loss_hand_computation():
    pred = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])  # 1x1x2x3
    target = torch.zeros_like(pred)
    # horizontal differences: row0: 1, 2 ; row1: 0, 0 -> squares 1 + 4 = 5
    # vertical differences: col0: 2, col1: 1, col2: -1 -> squares 4 + 1 + 1 = 6
    assert SPGEdgeLoss(reduction='sum')(pred, target).item() == pytest.approx(11.0)
    assert SPGEdgeLoss()(pred, target).item() == pytest.approx(11.0 / 6)
    # a constant offset has no gradient difference
    assert SPGEdgeLoss()(pred + 5, pred).item() == 0.0


def test_kl_zero_for_identical_and_direct_otherwise():
    torch.manual_seed(0)
    a = torch.randn(2, 5, 3, 4)
    b = torch.randn(2, 5, 3, 4)
    assert SemanticKLLoss()(a, a).item() == pytest.approx(0.0, abs=1e-7)
    p = F.softmax(b / 2.0, dim=1)  # target (ground truth) distribution
    q = F.softmax(a / 2.0, dim=1)
    direct = (p * (p.log() - q.log())).sum(1).mean()
    assert SemanticKLLoss(temperature=2.0)(a, b).item() == pytest.approx(direct.item(), rel=1e-5)
    # torch's kl_div agrees: kl_div(input=log q, target=p)
    ref = F.kl_div(q.log(), p, reduction='sum') / (2 * 3 * 4)
    assert SemanticKLLoss(temperature=2.0)(a, b).item() == pytest.approx(ref.item(), rel=1e-5)


def test_kl_gradient_reaches_prediction():
    a = torch.randn(1, 4, 2, 2, requires_grad=True)
    SemanticKLLoss()(a, torch.randn(1, 4, 2, 2)).backward()
    assert a.grad.abs().sum() > 0


def test_clip_loss_value_and_sign_flip_on_prompt_swap():
    img = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8]]), dim=-1)
    text = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)  # [negative, positive]
    loss = CLIPMultimodalLoss()(img, text)
    # per image: cos(neg) - cos(pos) = 1 - 0 and 0.6 - 0.8
    assert loss.item() == pytest.approx((1.0 + (0.6 - 0.8)) / 2)
    assert CLIPMultimodalLoss()(img, text.flip(0)).item() == pytest.approx(-loss.item())


@pytest.mark.parametrize('cls', [SPGPixelLoss, SPGPSNRLoss, SPGEdgeLoss, SemanticKLLoss, CLIPMultimodalLoss])
def test_unknown_reduction_raises(cls):
    with pytest.raises(ValueError, match='reduction'):
        cls(reduction='median')
