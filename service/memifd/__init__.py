"""memifd: a management service for memif interfaces (REST, gRPC, packet streaming)."""

__version__ = "0.1.0"
