"""Published LaMem figures that ``memgaze-bench lamem`` prints beside its own, each with its source.

They are quoted, never rerun here. ``checked`` says how each figure was checked when it was entered:
against text of the source (its abstract or its authors' repository) or only carried over from a
citation, which a reader should confirm in the paper.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Anchor:
    """One published result on LaMem: Spearman ρ (MSE where published) and where it comes from."""

    model: str
    spearman: float
    mse: float | None
    source: str
    checked: str


KHOSLA_2015 = ("Khosla, Raju, Torralba, Oliva: Understanding and Predicting Image Memorability at a Large Scale, "
               "ICCV 2015, doi:10.1109/ICCV.2015.275")

ANCHORS: tuple[Anchor, ...] = (
    Anchor("Human consistency", 0.68, None, KHOSLA_2015, "ρ in the paper's abstract"),
    Anchor("MemNet", 0.64, None, KHOSLA_2015, "ρ in the paper's abstract"),
    Anchor("AMNet", 0.677, 0.0082,
           "Fajtl, Argyriou, Monekosso, Remagnino: AMNet: Memorability Estimation with Attention, CVPR 2018, "
           "pp. 6363-6372, arXiv:1804.03115",
           "ρ in the authors' repository (github.com/ok1zjf/AMNet README: 0.67666 published, mean of the five "
           "LaMem splits); MSE as cited, not found in searchable text"),
    Anchor("ResMem-Net", 0.679, 0.011,
           "Praveen, Noorwali, Samiayya, Khan, Vincent P M, Bashir, Alagupandi: ResMem-Net: memory based deep CNN "
           "for image memorability estimation, PeerJ Computer Science 7:e767 (2021), doi:10.7717/peerj-cs.767",
           "ρ and MSE in the paper's abstract"),
    Anchor("Leonardi et al.", 0.687, 0.0079,
           "Leonardi et al.: Image Memorability Using Diverse Visual Features and Soft Attention, ICIAP 2019, "
           "LNCS 11752, doi:10.1007/978-3-030-30645-8_16",
           "paper found; figures as cited, not found in searchable text"),
    Anchor("Squalli-Houssaini et al.", 0.72, 0.0092,
           "Squalli-Houssaini, Duong, Marquant, Demarty: Deep learning for predicting image memorability, "
           "ICASSP 2018, hal-01629297",
           "paper found; figures as cited, not found in searchable text"),
)
