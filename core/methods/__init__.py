"""Clustering methods sharing one engine, and the registry that names them (`register` adds one)."""

from .base import ClusteringMethod, NoSettings
from .dccs import DCCS
from .dcsm import DCSM
from .registry import all_method_fields, get, names, owners, register, unregister

register(DCCS)
register(DCSM)

__all__ = ["ClusteringMethod", "NoSettings", "DCCS", "DCSM", "register", "unregister", "get", "names", "owners",
           "all_method_fields"]
