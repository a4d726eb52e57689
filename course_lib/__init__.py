"""Transformers, Piece by Piece: the course library.

``course_lib.nn`` holds the building blocks, ``course_lib.models`` the model families.
"""
from .device import available_devices, pick_device, seed_everything

__version__ = "0.1.0"
__all__ = ["available_devices", "pick_device", "seed_everything", "__version__"]
