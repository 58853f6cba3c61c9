"""The one detector: a recurrent backbone and a detection head, composed (docs/architecture.md).

:class:`RecurrentDetector` takes both parts as modules, so any backbone (``forward(x[T, B, C, H, W])`` →
feature levels, with ``channels``, ``strides`` and explicit state) combines with any head
(:class:`evdet.models.head.DetectionHead`). It owns what is the same for every combination: input and
target validation, running the backbone over every bin, training only on labelled bins, the stateful and
explicit state APIs, class remapping by name, optimizer parameter groups and the T × B regrouping of
detections. TorchScript-able: ``torch.jit.script(detector)`` exposes ``forward``, ``detect``, ``reset``,
``reset_all``, ``detach``, ``get_state`` and ``set_state``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from evdet.models.head import ClassLogitLayer, DetectionHead


class RecurrentDetector(nn.Module):
    """A recurrent backbone feeding a stateless detection head.

    Args:
        backbone: ``forward(Tensor[T, B, C, H, W]) -> list[Tensor[T, B, C_l, H_l, W_l]]`` with attributes
            ``in_channels``, ``channels``, ``strides`` and methods ``reset``, ``reset_all``, ``detach``,
            ``get_state``, ``set_state`` (see :mod:`evdet.models.backbones`).
        head: a :class:`DetectionHead` built for the backbone's levels.

    Attributes:
        in_channels: C of the input. num_classes: the head's C.
    """

    def __init__(self, backbone: nn.Module, head: DetectionHead):
        super().__init__()
        if len(list(backbone.channels)) == 0:
            raise ValueError("RecurrentDetector: the backbone declares no feature level")
        self.backbone = backbone
        self.head = head
        self.in_channels: int = int(backbone.in_channels)
        self.num_classes: int = int(head.num_classes)

    # ------------------------------------------------------------------ inference
    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 5 or x.shape[2] != self.in_channels:
            raise ValueError(f"detector: expected x of shape [T, B, {self.in_channels}, H, W], "
                             f"got {list(x.shape)}")

    def _levels(self, x: Tensor) -> list[Tensor]:
        """Backbone over every bin (updating the state); levels as ``Tensor[T, B, C_l, H_l, W_l]``."""
        self._check_input(x)
        return self.backbone(x)

    def _features(self, x: Tensor) -> list[Tensor]:
        """Backbone over every bin (updating the state); levels as ``Tensor[T·B, C_l, H_l, W_l]``."""
        return [f.flatten(0, 1) for f in self._levels(x)]  # each [T*B, C_l, H_l, W_l]

    def _head_inputs(self, x: Tensor) -> list[list[Tensor]]:
        """Backbone over every bin (updating the state); its levels in the groups of frames the head sees
        per call at inference: one group of all T·B frames (t-major), or, for a head with
        ``per_bin_inference``, one group per bin (``Tensor[B, C_l, H_l, W_l]``), in bin order."""
        if not self.head.per_bin_inference:
            return [self._features(x)]
        levels = self._levels(x)  # each [T, B, C_l, H_l, W_l]
        groups: list[list[Tensor]] = []
        for t in range(x.shape[0]):
            groups.append([f[t] for f in levels])
        return groups

    def forward(self, x: Tensor) -> list[Tensor]:
        """Run the backbone (updating its state) and the head on every bin.

        Args:
            x: ``Tensor[T, B, C, H, W]``.

        Returns:
            the head's raw outputs for the T·B frames in t-major order (frame index t·B + b); each head
            documents their layout.
        """
        per_group = [self.head(levels, x.shape[3], x.shape[4]) for levels in self._head_inputs(x)]
        if len(per_group) == 1:
            return per_group[0]
        outputs: list[Tensor] = []
        for k in range(len(per_group[0])):
            outputs.append(torch.cat([out[k] for out in per_group], dim=0))  # t-major
        return outputs

    @torch.jit.export
    def detect(self, x: Tensor, score_thresh: float = 0.1, nms_thresh: float = 0.5,
               max_detections: int = 100) -> list[Tensor]:
        """Detections of every bin: T·B tensors ``[n, 6]`` in t-major order (frame index t·B + b).

        Rows ``(x1, y1, x2, y2, score, class_idx)``: xyxy network pixels clipped to the image, class_idx in
        0..C−1 (as a float), scores descending, at most ``max_detections`` rows; ``nms_thresh >= 1``
        disables NMS.
        """
        detections: list[Tensor] = []
        for levels in self._head_inputs(x):
            detections.extend(self.head.detect(levels, x.shape[3], x.shape[4], score_thresh, nms_thresh,
                                               max_detections))
        return detections

    @torch.jit.ignore
    def get_boxes(self, x: Tensor, score_thresh: float = 0.1, nms_thresh: float = 0.5,
                  max_detections: int = 100) -> list[list[Tensor]]:
        """Detections regrouped T × B: ``out[t][b]`` is a ``Tensor[n, 6]`` (see :meth:`detect`).

        Raises:
            ValueError: ``max_detections`` < 0.
        """
        if max_detections < 0:
            raise ValueError(f"get_boxes: max_detections must be >= 0, got {max_detections}")
        flat = self.detect(x, score_thresh, nms_thresh, max_detections)
        t, b = x.shape[0], x.shape[1]
        return [[flat[i * b + j] for j in range(b)] for i in range(t)]

    # ------------------------------------------------------------------ training
    @torch.jit.ignore
    def compute_loss(self, x: Tensor, targets: list[list[Tensor]],
                     frame_is_labeled: Tensor) -> dict[str, Tensor]:
        """Losses of a chunk: the backbone runs on every bin (the state sees them all), the head and its
        loss only on the labelled bins.

        Args:
            x: ``Tensor[T, B, C, H, W]``.
            targets: T × B lists of ``Tensor[n, 5]`` rows ``(x1, y1, x2, y2, class_idx)``, xyxy network
                pixels, class_idx in 0..C−1 (``n`` may be 0).
            frame_is_labeled: ``Tensor[T, B]`` bool.

        Returns:
            the head's losses (``"loss"`` the total, then its named parts). With no labelled bin: zeros
            under the head's ``loss_names``, ``"loss"`` connected to every trainable parameter (each still
            gets a gradient, as DDP requires).

        Raises:
            ValueError: shapes of ``targets`` / ``frame_is_labeled`` disagree with x, or a bad box row
                (its t, b and row index are given).
        """
        self._check_loss_inputs(x, targets, frame_is_labeled)
        feats = self._features(x)
        idx = frame_is_labeled.flatten().to(torch.bool).nonzero().view(-1).to(x.device)  # [N] t-major
        if idx.numel() == 0:
            zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
            return {name: zero if k == 0 else zero.detach() for k, name in enumerate(self.head.loss_names)}
        frame_targets = [tg.to(x.device) for tg in self._labeled_targets(targets, idx, x.shape[1])]
        return self.head.loss([f[idx] for f in feats], frame_targets, x.shape[3], x.shape[4])

    @torch.jit.ignore
    def _check_loss_inputs(self, x: Tensor, targets: list[list[Tensor]], frame_is_labeled: Tensor) -> None:
        self._check_input(x)
        t, b = x.shape[0], x.shape[1]
        if list(frame_is_labeled.shape) != [t, b]:
            raise ValueError(f"compute_loss: frame_is_labeled must have shape [{t}, {b}], got "
                             f"{list(frame_is_labeled.shape)}")
        if len(targets) != t or any(len(row) != b for row in targets):
            raise ValueError(f"compute_loss: targets must be a {t} x {b} nested list")

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
    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """AdamW parameter groups: backbone at ``lr``, head at ``lr · head.lr_mult``; weights (ndim ≥ 2)
        with ``weight_decay``, 1-D parameters (biases, norms) without."""
        groups = []
        for module, group_lr in ((self.backbone, lr), (self.head, lr * float(self.head.lr_mult))):
            params = [p for p in module.parameters() if p.requires_grad]
            groups.append({"params": [p for p in params if p.ndim >= 2], "lr": group_lr,
                           "weight_decay": weight_decay})
            groups.append({"params": [p for p in params if p.ndim < 2], "lr": group_lr, "weight_decay": 0.0})
        return [g for g in groups if g["params"]]

    @property
    def grad_clip(self) -> float:
        """Gradient-norm clipping the head needs (0: none); the trainer clips at the smaller of this and
        its own setting."""
        return float(self.head.grad_clip)

    # ------------------------------------------------------------------ recurrent state
    @torch.jit.export
    def reset(self, mask_keep_memory: Tensor) -> None:
        """Zero the recurrent state of columns where ``mask_keep_memory [B]`` is 0; detach all state."""
        self.backbone.reset(mask_keep_memory)

    @torch.jit.export
    def reset_all(self) -> None:
        """Forget all recurrent state."""
        self.backbone.reset_all()

    @torch.jit.export
    def detach(self) -> None:
        """Detach the recurrent state from the graph of previous calls."""
        self.backbone.detach()

    @torch.jit.export
    def get_state(self) -> list[Tensor]:
        """The recurrent state as a flat, ordered list of tensors (each ``[B, ...]``; ``[]`` before the
        first call or after ``reset_all``). Zeroing a column's slice of every tensor resets that column."""
        return self.backbone.get_state()

    @torch.jit.export
    def set_state(self, state: list[Tensor]) -> None:
        """Replace the recurrent state by a list as returned by :meth:`get_state` (``[]``: forget it)."""
        self.backbone.set_state(state)

    # ------------------------------------------------------------------ class remapping
    @torch.jit.ignore
    def map_cls_weights(self, src_state_dict: dict[str, Tensor], old_classes: list[str],
                        new_classes: list[str]) -> None:
        """Load ``src_state_dict`` (a detector of the same architecture with classes ``old_classes``) into
        this detector (classes ``new_classes``), remapping the rows of the head's class-logit layers
        (:meth:`DetectionHead.class_logit_layers`) by class name.

        In each block of those rows, the background / no-object row and the classes present in both lists
        get the source weights; classes only in ``new_classes`` keep their current weights (the head's
        initialisation prior). Every other tensor is copied as is.

        Raises:
            ValueError: ``new_classes`` does not have ``num_classes`` names, a class-logit tensor does not
                match ``old_classes``, or another tensor has a different shape (key given).
        """
        if len(new_classes) != self.num_classes:
            raise ValueError(f"map_cls_weights: new_classes has {len(new_classes)} names, the model has "
                             f"{self.num_classes} classes")
        own = self.state_dict()
        layers: dict[str, ClassLogitLayer] = {}
        for layer in self.head.class_logit_layers():
            for key in layer.keys:
                layers["head." + key] = layer
        with torch.no_grad():
            for key, value in src_state_dict.items():
                if key not in own:
                    continue
                if key in layers:
                    _remap_rows(key, value, own[key], layers[key], old_classes, new_classes)
                elif own[key].shape != value.shape:
                    raise ValueError(f"map_cls_weights: {key} has shape {list(value.shape)} in the source, "
                                     f"{list(own[key].shape)} here")
                else:
                    own[key].copy_(value)


def _remap_rows(key: str, src: Tensor, dst: Tensor, layer: ClassLogitLayer, old_classes: list[str],
                new_classes: list[str]) -> None:
    """Copy the per-class rows of ``src`` into ``dst`` by class name (in place), block by block."""
    extra = 1 if layer.background else 0
    g = layer.groups
    if src.shape[0] != g * (len(old_classes) + extra) or src.shape[1:] != dst.shape[1:]:
        raise ValueError(f"map_cls_weights: {key} has shape {list(src.shape)}, expected {g} block(s) of "
                         f"{len(old_classes)} old classes{' + 1' if extra else ''} rows and trailing shape "
                         f"{list(dst.shape[1:])}")
    s = src.view(g, len(old_classes) + extra, *src.shape[1:])
    d = dst.view(g, len(new_classes) + extra, *dst.shape[1:])
    if extra:
        d[:, -1] = s[:, -1]
    for j, name in enumerate(new_classes):
        if name in old_classes:
            d[:, j] = s[:, old_classes.index(name)]
