"""Figures and tables from run stores and profile tables (the paper side of the testbed).

:mod:`analysis.runs` loads a run store into pandas, :mod:`analysis.style` is the one paper style,
:mod:`analysis.figures` and :mod:`analysis.tables` make the figures and tables, and
:mod:`analysis.report` writes them all, with their index ``report.json``, for ``testbed report``.
Needs the ``analysis`` extra. From ``testbed`` only the run store's read-only reader
(:mod:`testbed.runstore.reader`) is imported; profile tables come from :mod:`traces.profile`.
"""
