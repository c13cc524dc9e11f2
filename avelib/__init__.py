"""avelib: the AVE-CLIP reproduction suite."""
