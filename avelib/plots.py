"""An offline HTML template for `dvc plots show`.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so `dvc_plots/index.html`
stays blank without network. This template inlines one self-contained bundle of the three
libraries (built by `vl_convert.javascript_bundle`) instead. DVC fills `{plot_divs}` (required)
and `{refresh_tag}`; the template deliberately has no `{scripts}` placeholder, which is where DVC
would otherwise insert its CDN `<script src=...>` tags.

`.dvc/config` names the file (`[plots] html_template = plots_template.html`; DVC resolves a
relative path against the `.dvc/` folder). It is generated at install time (`make install`),
not committed: the bundle is ~0.9 MB of minified JavaScript. If the file is missing, DVC takes the
configured path string itself as the template and fails with "HTML template has to contain
'{plot_divs}'": regenerate it with `python -m avelib plots-template`.
"""

from __future__ import annotations

import re
from pathlib import Path

from avelib.io import atomic_path

DEFAULT_OUT = ".dvc/plots_template.html"
# DVC's built-in vega templates declare "$schema": ".../vega-lite/v5.json": keep the bundle on v5
VEGA_LITE_VERSION = "v5.21"
# the placeholders dvc_render.html.HTML.embed replaces by plain string substitution
DVC_PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")

_PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot</title>
    <!-- vega {vega} + vega-lite {vega_lite} + vega-embed {vega_embed}, inlined by avelib.plots (offline) -->
    <script type="text/javascript">
(function () {  // own scope: the bundle's top-level names must not clash with DVC's `var spec`
__BUNDLE__
})();
    </script>
    <style>
        body { font-family: sans-serif; }
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def vega_bundle(vl_version: str = VEGA_LITE_VERSION) -> str:
    """vega + vega-lite + vega-embed as one script defining `window.vega`, `vegaLite`, `vegaEmbed`."""
    import vl_convert  # imported here: only this command needs the (large) native module

    bundle = vl_convert.javascript_bundle(vl_version=vl_version)
    # inside an inline <script>, the HTML parser ends the element at the first "</script";
    # "<\/" is the same string to JavaScript, so escaping it keeps the code's meaning
    bundle = re.sub(r"</(script)", r"<\\/\1", bundle, flags=re.IGNORECASE)
    found = [p for p in DVC_PLACEHOLDERS if p in bundle]
    if found:  # DVC would substitute inside the JavaScript and corrupt it
        raise RuntimeError(f"vl_convert bundle (vega-lite {vl_version}) contains DVC placeholder(s) {found}")
    return bundle


def template_html(vl_version: str = VEGA_LITE_VERSION) -> str:
    """The full page: DVC's placeholders around the inlined bundle; no external URLs."""
    import vl_convert

    versions = {
        "{vega}": vl_convert.get_vega_version(),
        "{vega_lite}": vl_version,
        "{vega_embed}": vl_convert.get_vega_embed_version(),
    }
    page = _PAGE
    for key, value in versions.items():
        page = page.replace(key, value)
    # the bundle goes in last so that nothing above can rewrite text inside it
    return page.replace("__BUNDLE__", vega_bundle(vl_version))


def write_template(out: str | Path = DEFAULT_OUT, vl_version: str = VEGA_LITE_VERSION) -> Path:
    """Write the offline template to `out` (atomically, parents created); return the path."""
    out = Path(out)
    html = template_html(vl_version)
    with atomic_path(out) as tmp:  # creates the parent folder
        tmp.write_text(html, encoding="utf-8")
    return out
