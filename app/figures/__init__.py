"""Plotly figures, defined once in Python: the browser applies them with ``Plotly.react`` and the
same functions give ``fig.show()`` in a notebook or an offline HTML file. One module per page."""
