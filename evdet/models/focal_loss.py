"""Detection losses: softmax focal loss and smooth-L1 (SPEC 5). Pure functions, inputs never modified."""


import torch
import torch.nn.functional as F
from torch import Tensor


def softmax_focal_loss(logits: Tensor, targets: Tensor, gamma: float = 2.0, alpha: float | None = None,
                       ignore_index: int = -1) -> Tensor:
    """Summed softmax focal loss ``−α_t (1 − p_t)^γ log p_t`` (Lin et al. 2017) over non-ignored rows.

    Args:
        logits: ``Tensor[N, K]`` (K = C+1, background last at K−1), leading dims flattened by the caller.
        targets: ``Tensor[N]`` int64 in ``0..K−1``, or ``ignore_index`` (no contribution).
        gamma: focusing parameter γ ≥ 0.
        alpha: None (no weighting), or the weight of foreground rows (target < K−1); background rows get
            ``1 − alpha``.

    Returns:
        Scalar sum (the caller normalises, e.g. by max(1, positives)).

    Raises:
        ValueError: shapes disagree or a target is outside ``0..K−1`` (its index and value are given).
    """
    if logits.dim() != 2 or targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(f"softmax_focal_loss: expected logits [N, K] and targets [N], got "
                         f"{list(logits.shape)} and {list(targets.shape)}")
    valid = targets != ignore_index
    bad = (valid & ((targets < 0) | (targets >= logits.shape[1]))).nonzero()
    if bad.shape[0] > 0:
        i = int(bad[0, 0])
        raise ValueError(f"softmax_focal_loss: target {i} = {int(targets[i])} outside "
                         f"0..{logits.shape[1] - 1}")
    safe = torch.where(valid, targets, torch.zeros_like(targets))  # a new tensor: targets untouched
    logp = F.log_softmax(logits.float(), dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)  # [N]
    loss = -((1.0 - logp.exp()) ** gamma) * logp
    if alpha is not None:
        fg = safe < logits.shape[1] - 1
        loss = loss * torch.where(fg, torch.full_like(loss, alpha), torch.full_like(loss, 1.0 - alpha))
    return (loss * valid.to(loss.dtype)).sum()


def smooth_l1_loss(pred: Tensor, target: Tensor, beta: float = 0.11) -> Tensor:
    """Summed smooth-L1: ``0.5·d²/β`` where ``|d| < β``, else ``|d| − 0.5·β``.

    Args:
        pred, target: ``Tensor[..., 4]`` of the same shape (box deltas of positive anchors).

    Returns:
        Scalar sum (the caller normalises).
    """
    if pred.shape != target.shape:
        raise ValueError(f"smooth_l1_loss: shapes differ: {list(pred.shape)} vs {list(target.shape)}")
    d = (pred - target).abs()
    return torch.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta).sum()
