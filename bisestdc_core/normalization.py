"""The input normalisation every network here is trained and deployed with.

RGB on the 0..1 scale, ImageNet statistics (the STDC backbones were pretrained with them).
Checkpoints record the values they were trained with; these are the defaults.
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
