"""fti features."""
