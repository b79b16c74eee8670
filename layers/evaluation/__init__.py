"""The district's evaluation of its streets (考评): schemes, inputs, scores, publications."""

from layers.evaluation import tables  # noqa: F401  (the evaluation's tables, same metadata)
