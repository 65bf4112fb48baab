"""Converters from public dataset formats into the project's layout.

Every converter writes ``<dst>/{train,valid,test}/{images,masks}`` (a mask has its image's file
stem) and runs as ``python -m datasets_prep.<name> --src ... --dst ...``: ``sipakmed``,
``herlev``, ``isic2017``, ``bcss``, ``polygons`` (COCO / LabelMe JSON), ``instances`` (DSB2018)
and ``split`` (re-split an existing image/mask dataset). ``stats`` describes a converted dataset.

The shared steps are library functions: :mod:`datasets_prep.splitting` (seeded split grouped by
source id), :mod:`datasets_prep.transforms` (resize, offline augmentation after the split,
upscaling), :mod:`datasets_prep.writer` (the pipeline every converter ends in) and
:mod:`datasets_prep.stats`.
"""
