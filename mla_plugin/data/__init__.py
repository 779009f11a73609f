"""Framework-free datasets and data formats (no MMF import): each returns samples as
``{"inputs": {modality: tensor}, "mask", "targets", "index"}``."""
