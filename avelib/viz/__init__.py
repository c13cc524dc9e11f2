"""Every plot of the suite, so notebooks and reports draw the same pictures.

Library code never shows figures: functions return matplotlib Figures (Agg backend). Inside
IPython a Figure returned as a cell's value is rendered as a PNG (registered below), so notebooks
just end a cell with the plot call.
"""

import matplotlib

if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "agg"):
    matplotlib.use("Agg")


def _show_figures_in_ipython() -> None:
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        select_figure_formats(shell, {"png"}, bbox_inches="tight", dpi=110)


_show_figures_in_ipython()
