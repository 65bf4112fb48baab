"""MLflow stores and servers, outages and the spool (seg.tracking)."""
