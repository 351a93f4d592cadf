"""Parsers of untrusted input raise nothing but the project's errors (hypothesis)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import TestbedError
from devices.meters.pmic import parse_pmic_output
from devices.meters.registry import parse_uri
from devices.meters.samples import parse_samples_csv

CSV_ALPHABET = st.sampled_from(list('0123456789.,-e+#=\n tnsp_wvoaiu\r"x'))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=CSV_ALPHABET, max_size=300) | st.text(max_size=200))
def test_sample_csv_parser(text: str) -> None:
    try:
        samples, _meta = parse_samples_csv(text, "fuzz.csv")
    except TestbedError as exc:
        assert str(exc).startswith("fuzz.csv")
        return
    assert all(b.t_ns >= a.t_ns for a, b in itertools.pairwise(samples))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_uri_parser(text: str) -> None:
    try:
        parse_uri(text)
    except TestbedError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_pmic_output_parser(text: str) -> None:
    r = parse_pmic_output(text)
    assert set(r.rails_w) <= set(r.volts) & set(r.amps)
