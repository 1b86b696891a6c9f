"""Encoders with named feature taps, and a registry to create them by name."""

from infomax.models.registry import create_encoder, list_encoders, register_encoder

__all__ = ["create_encoder", "list_encoders", "register_encoder"]
