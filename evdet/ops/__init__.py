"""Box maths (pure torch): conversions, IoU/GIoU, clipping, NMS, SSD box coding."""

from evdet.ops.box_coder import decode_boxes, encode_boxes
from evdet.ops.boxes import (
    box_area,
    box_convert,
    box_cxcywh_to_xyxy,
    box_iou,
    box_xywh_to_xyxy,
    box_xyxy_to_cxcywh,
    box_xyxy_to_xywh,
    clip_boxes_to_image,
    generalized_box_iou,
    remove_small_boxes,
)
from evdet.ops.nms import batched_nms, nms, nms_reference

__all__ = [
    "batched_nms",
    "box_area",
    "box_convert",
    "box_cxcywh_to_xyxy",
    "box_iou",
    "box_xywh_to_xyxy",
    "box_xyxy_to_cxcywh",
    "box_xyxy_to_xywh",
    "clip_boxes_to_image",
    "decode_boxes",
    "encode_boxes",
    "generalized_box_iou",
    "nms",
    "nms_reference",
    "remove_small_boxes",
]
