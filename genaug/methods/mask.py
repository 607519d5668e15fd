"""mask method (being written; registers its method spec and presets here)."""
