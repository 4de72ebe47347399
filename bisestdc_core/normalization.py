"""The input normalisation every network here is trained and deployed with.

RGB on the 0..1 scale, ImageNet statistics (the STDC backbones were pretrained with them).
Checkpoints record the values they were trained with; these are the defaults. No torch here
(the model card reads them where torch is not loaded); the torch conversion of frames with
them is :func:`bisestdc_core.image_tensors.images_to_tensor`.
"""

from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
