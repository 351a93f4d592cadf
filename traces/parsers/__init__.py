"""Parsers from real sources into the testbed's trace formats.

Each parser reads one kind of source file and returns a trace object of :mod:`traces.dvfs`,
:mod:`traces.battery` or :mod:`traces.power`; every problem is a :class:`~devices.errors.ParseError`
naming the file, the line and what is wrong. :mod:`traces.parsers.registry` registers each one, with
the detector that recognises its files, in :data:`traces.sources.SOURCES`.
"""
