"""Base of the recurrent detectors: input/target validation, state handling and T × B regrouping.

:class:`RecurrentDetector` holds what :class:`evdet.models.SingleStageDetector` and
:class:`evdet.models.SetDetector` share: the ``feature_extractor`` (a recurrent backbone) with
``reset(mask)``, ``reset_all()`` and ``detach()`` forwarded to it, the checks of ``x`` and of the
``compute_loss`` targets, and ``get_boxes`` built on the subclass's ``detect``. TorchScript compiles
the inherited ``reset``, ``reset_all`` and ``detach`` (exported) with the subclass.
"""

import torch
from torch import Tensor, nn

from evdet.models.backbones import build_backbone


class RecurrentDetector(nn.Module):
    """Recurrent detector base: a backbone with explicit state, ``in_channels`` and ``num_classes``.

    Subclasses define ``forward``, ``detect`` (exported), ``compute_loss`` and ``map_cls_weights``.

    Args:
        feature_extractor: the backbone (``forward(Tensor[T, B, C, H, W])`` with ``channels``, ``strides``,
            ``reset``, ``reset_all``, ``detach``); None builds ``backbone`` from ``BACKBONES`` with
            ``feature_base`` and ``feature_channels_out``.
        in_channels: input channels C.
        num_classes: foreground classes.

    Raises:
        ValueError: ``num_classes`` < 1 (the message names the subclass), unknown backbone name.
    """

    def __init__(self, feature_extractor: nn.Module | None, in_channels: int, num_classes: int, backbone: str,
                 feature_base: int, feature_channels_out: int):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"{type(self).__name__}: num_classes must be >= 1, got {num_classes}")
        if feature_extractor is None:
            feature_extractor = build_backbone(backbone, in_channels, feature_base, feature_channels_out)
        self.feature_extractor = feature_extractor
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.detector_name = type(self).__name__

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 5 or x.shape[2] != self.in_channels:
            raise ValueError(f"{self.detector_name}: expected x of shape [T, B, {self.in_channels}, H, W], "
                             f"got {list(x.shape)}")

    @torch.jit.ignore
    def _check_loss_inputs(self, x: Tensor, targets: list[list[Tensor]], frame_is_labeled: Tensor) -> None:
        """Shapes of a ``compute_loss`` call: x ``[T, B, C, H, W]``, ``frame_is_labeled [T, B]``, targets
        T × B."""
        self._check_input(x)
        t, b = x.shape[0], x.shape[1]
        if list(frame_is_labeled.shape) != [t, b]:
            raise ValueError(f"compute_loss: frame_is_labeled must have shape [{t}, {b}], got "
                             f"{list(frame_is_labeled.shape)}")
        if len(targets) != t or any(len(row) != b for row in targets):
            raise ValueError(f"compute_loss: targets must be a {t} x {b} nested list")

    @torch.jit.ignore
    def _labeled_frames(self, x: Tensor, targets: list[list[Tensor]], frame_is_labeled: Tensor
                        ) -> tuple[list[Tensor], Tensor, list[Tensor]]:
        """The first steps of every ``compute_loss``: check the inputs, run the feature extractor on every
        bin (the recurrent state sees them all) and pick the labelled frames.

        Returns:
            ``(feats, idx, frame_targets)``: per level ``Tensor[T·B, C_l, H_l, W_l]``; ``Tensor[N]`` t-major
            indices ``t·B + b`` of the labelled frames (empty: no labelled bin); their N validated targets
            ``Tensor[n, 5]`` on the device of ``x``.
        """
        self._check_loss_inputs(x, targets, frame_is_labeled)
        feats = [f.flatten(0, 1) for f in self.feature_extractor(x)]
        idx = frame_is_labeled.flatten().to(torch.bool).nonzero().view(-1).to(x.device)
        frame_targets = [tg.to(x.device) for tg in self._labeled_targets(targets, idx, x.shape[1])]
        return feats, idx, frame_targets

    @torch.jit.ignore
    def _zero_losses(self, names: tuple[str, ...]) -> dict[str, Tensor]:
        """The losses of a chunk without a labelled bin: ``names[0]`` a zero connected to every trainable
        parameter (each still gets a gradient, as DDP requires), the others detached zeros."""
        zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
        return {name: zero if k == 0 else zero.detach() for k, name in enumerate(names)}

    @torch.jit.ignore
    def _labeled_targets(self, targets: list[list[Tensor]], idx: Tensor, b: int) -> list[Tensor]:
        """The validated targets of the labelled frames ``idx`` (t-major frame indices t·B + b)."""
        frame_targets = []
        for i in idx.tolist():
            ti, bi = divmod(i, b)
            tg = targets[ti][bi]
            self._check_target(tg, ti, bi)
            frame_targets.append(tg)
        return frame_targets

    @torch.jit.ignore
    def _check_target(self, tg: Tensor, ti: int, bi: int) -> None:
        if not isinstance(tg, torch.Tensor) or tg.dim() != 2 or tg.shape[1] != 5:
            shape = list(tg.shape) if isinstance(tg, torch.Tensor) else type(tg).__name__
            raise ValueError(f"compute_loss: targets[{ti}][{bi}] must be a Tensor[n, 5], got {shape}")
        if tg.shape[0] == 0:
            return
        cls = tg[:, 4]
        bad = ((cls < 0) | (cls > self.num_classes - 1) | (cls != cls.round())).nonzero()
        if bad.shape[0] > 0:
            r = int(bad[0, 0])
            raise ValueError(f"compute_loss: targets[{ti}][{bi}] box {r} has class_idx {float(cls[r])}, "
                             f"expected an integer in 0..{self.num_classes - 1}")
        bad = ((tg[:, 2] <= tg[:, 0]) | (tg[:, 3] <= tg[:, 1]) | ~torch.isfinite(tg[:, :4]).all(1)).nonzero()
        if bad.shape[0] > 0:
            r = int(bad[0, 0])
            raise ValueError(f"compute_loss: targets[{ti}][{bi}] box {r} is not a valid xyxy box: "
                             f"{tg[r, :4].tolist()}")

    @torch.jit.ignore
    def get_boxes(self, x: Tensor, score_thresh: float = 0.1, nms_thresh: float = 0.5,
                  max_detections: int = 100) -> list[list[Tensor]]:
        """Detections regrouped T × B: ``out[t][b]`` is a ``Tensor[n, 6]`` (see the subclass's ``detect``).

        Raises:
            ValueError: ``max_detections`` < 0.
        """
        if max_detections < 0:
            raise ValueError(f"get_boxes: max_detections must be >= 0, got {max_detections}")
        flat = self.detect(x, score_thresh, nms_thresh, max_detections)
        t, b = x.shape[0], x.shape[1]
        return [[flat[i * b + j] for j in range(b)] for i in range(t)]

    @torch.jit.export
    def reset(self, mask_keep_memory: Tensor) -> None:
        """Zero the recurrent state of columns where ``mask_keep_memory [B]`` is 0; detach all state."""
        self.feature_extractor.reset(mask_keep_memory)

    @torch.jit.export
    def reset_all(self) -> None:
        """Forget all recurrent state."""
        self.feature_extractor.reset_all()

    @torch.jit.export
    def detach(self) -> None:
        """Detach the recurrent state from the graph of previous calls."""
        self.feature_extractor.detach()
