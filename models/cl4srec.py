"""CL4SRec (Xie et al., ICDE 2022): MCLRec without L_cl2 and the augmenters, L_rec + lambda L_cl1.

The same network and augmentations as MCLRec; only its defaults differ
(``models/cl4srec.yaml`` read after ``models/mclrec.yaml``). RecBole's own ``Trainer`` trains it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from models.mclrec import MCLRec


class CL4SRec(MCLRec):
    """MCLRec's encoder and data augmentation with the InfoNCE term alone."""

    defaults_files: ClassVar[tuple[str, ...]] = ("sasrec", "mclrec", "cl4srec")

    def __init__(self, config: Any, dataset: Any):
        if config["use_cl2"]:
            raise ValueError("CL4SRec has no augmenters (use_cl2 must be false); MCLRec is the model with them")
        super().__init__(config, dataset)
