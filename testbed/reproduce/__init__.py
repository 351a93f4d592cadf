"""Reproductions: RT3's own accounting end to end, the waterfall from it to a board, and the sensitivity of
the answer to the request period and idle power (``testbed reproduce …``)."""
