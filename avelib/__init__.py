"""avelib: the AVE-CLIP reproduction suite.

Importing it pins torch's CPU numerics (avelib.runtime): the same seed gives the same bits on any
x86-64 CPU with AVX2 at the same thread count; `AVELIB_NUMERICS=native` opts out.
"""

from avelib.runtime import pin_numerics as _pin_numerics

NUMERICS = _pin_numerics()
