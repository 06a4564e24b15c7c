"""Converters from memorability datasets as their publishers ship them into the LaMem layout that
``memgaze-train`` and ``memgaze-bench lamem`` read (``DST/images/``, ``DST/splits/{train,val,test}_<k>.txt``):
SUN memorability (:mod:`.sun`), MemCat (:mod:`.memcat`) and FIGRIM (:mod:`.figrim`); and eye trackers'
exports into ``DST/gaze/fixations.csv``: EyeLink (:mod:`.eyelink`), Tobii Pro Lab (:mod:`.tobii`), Pupil Labs
(:mod:`.pupil`) and Gazepoint (:mod:`.gazepoint`), placed on the images by :mod:`.fixations` and :mod:`.viewing`.
``python -m memgaze.train.convert KIND SRC DST`` runs them (:mod:`.__main__`).
"""
