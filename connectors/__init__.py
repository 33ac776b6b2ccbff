"""fti connectors."""
