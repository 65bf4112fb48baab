"""Reading, checking and streaming pairs; augmentation; the demo dataset (seg.data)."""
