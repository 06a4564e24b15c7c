"""Converters from memorability datasets as their publishers ship them into the LaMem layout that
``memgaze-train`` and ``memgaze-bench lamem`` read (``DST/images/``, ``DST/splits/{train,val,test}_<k>.txt``):
SUN memorability (:mod:`.sun`), MemCat (:mod:`.memcat`) and FIGRIM (:mod:`.figrim`).
``python -m memgaze.train.convert KIND SRC DST`` runs them (:mod:`.__main__`).
"""
