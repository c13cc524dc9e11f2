"""Every plot of the suite, so notebooks and reports draw the same pictures.

Library code never shows figures: functions return matplotlib Figures (Agg backend).
"""

import matplotlib

if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "agg"):
    matplotlib.use("Agg")
