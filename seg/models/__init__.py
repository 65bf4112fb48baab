"""Model builders: one module per architecture, each a function returning a ``keras.Model``,
named by the ``_target_`` of its schema in :data:`seg.config.model.MODEL_SCHEMAS` (which is
the registry of architectures, and the allow-list's source); shared blocks and custom layers.

May import :mod:`seg.config` and :mod:`seg.errors`.
"""
