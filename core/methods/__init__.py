"""Clustering methods sharing one engine."""

from .base import ClusteringMethod
from .dccs import DCCS

__all__ = ["ClusteringMethod", "DCCS"]
