"""Data: AVE annotation files, SynthAVE, decoding and segment caches. Knows nothing of models."""
