"""Clustering methods sharing one engine."""

from .base import ClusteringMethod
from .dccs import DCCS
from .dcsm import DCSM

__all__ = ["ClusteringMethod", "DCCS", "DCSM"]
