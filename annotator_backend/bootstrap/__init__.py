"""The project's own small model: a compact image encoder in front of SAM's decoder."""
