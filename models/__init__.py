"""fti models."""
