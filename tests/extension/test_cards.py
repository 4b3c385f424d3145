"""The model page's pure builders: the plots of an executed notebook."""

import base64
import io
import json

from deepvre_jupyter import cards


def _png():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([1, 2, 3])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def test_figures_are_the_png_outputs_of_the_notebook():
    png = _png()
    nb = {"cells": [
        {"cell_type": "markdown", "source": "# x"},
        {"cell_type": "code", "outputs": [{"output_type": "stream", "text": "hi"},
                                          {"output_type": "display_data", "data": {"image/png": png[:40] + "\n" + png[40:]}}]},
        {"cell_type": "code", "outputs": [{"output_type": "display_data",
                                           "data": {"image/png": "not base64 <script>", "text/html": "<b>"}}]},
        {"cell_type": "code", "outputs": [{"output_type": "execute_result", "data": {"image/png": [png]}}]},
    ]}
    figures = cards.notebook_figures(json.dumps(nb).encode())
    assert figures == [{"cell": 1, "png": png}, {"cell": 3, "png": png}]
    assert base64.b64decode(figures[0]["png"]).startswith(b"\x89PNG")
    assert cards.notebook_figures(json.dumps(nb).encode(), limit=1) == [{"cell": 1, "png": png}]
    assert cards.notebook_figures(json.dumps(nb).encode(), max_bytes=10) == []
    size = len(base64.b64decode(png))
    assert cards.notebook_figures(json.dumps(nb).encode(), total_bytes=size + 10) == [{"cell": 1, "png": png}]
    assert cards.notebook_figures(b"not json") == []
