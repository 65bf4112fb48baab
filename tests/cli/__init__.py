"""The console scripts end to end on generated and real data (seg.cli)."""
