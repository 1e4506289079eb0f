"""Samples, the dataset registry, and the built-in datasets.

Importing this package registers `synthetic-hr`, `synthetic` and `synthetic-ref` (procedural)
and the real benchmark formats `vstar`, `hrbench`, `mme-realworld`, `mme-realworld-lite`,
`treebench`, `refcoco`, `jsonl`.
"""

from grounding_gym.data import loaders, synthetic  # noqa: F401  (importing registers them)
from grounding_gym.data.registry import list_datasets, make_dataset, register_dataset
from grounding_gym.data.sample import Sample
from grounding_gym.views import ImageSource

__all__ = ["ImageSource", "Sample", "list_datasets", "make_dataset", "register_dataset"]
