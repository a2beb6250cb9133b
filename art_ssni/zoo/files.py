"""File names inside a zoo folder (written by :mod:`art_ssni.zoo.train`, read by :func:`art_ssni.zoo.load`)."""

__all__ = ["ZOO_CONFIG", "ZOO_METRICS", "ZOO_REFERENCE"]

#: the zoo's defaults (t*, ε, attack) and its data split
ZOO_CONFIG = "zoo.json"
#: what was measured when the zoo was trained
ZOO_METRICS = "metrics.json"
#: the clean training split's score-norm statistics (:class:`~art_ssni.ssni.ReferenceStats`)
ZOO_REFERENCE = "reference.json"
