"""fti flows."""
