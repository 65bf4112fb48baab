"""One run end to end: bad input, resume, output paths, sweeps (seg.runner)."""
