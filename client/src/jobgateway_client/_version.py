"""The client's version, and the gateway API version it speaks (its major number)."""

__version__ = "1.0.0"
API_VERSION = "1"
