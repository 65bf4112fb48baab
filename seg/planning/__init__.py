"""Planning a dataset's experiment (``seg-plan``): its fingerprint read once from the files, a
recipe chosen from it with a reason per choice, written as an experiment YAML.

May import :mod:`seg.data`, :mod:`seg.config`, :mod:`seg.machine` and :mod:`seg.errors`.
"""
