"""Data: finding image/mask pairs and checking their files, reading images and masks into the
one representation every stage uses (with the dataset's preprocessing), tf.data pipelines
with in-graph augmentation, class names and colours, and the embedded demo dataset.

May import :mod:`seg.config` and :mod:`seg.errors`.
"""
