"""docs/osc.md shows the address space the router really implements."""

from pathlib import Path

from nsynth_live.engine.osc import osc_address_space_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_osc_doc_table_matches_the_router():
    assert osc_address_space_markdown() in (DOCS / "osc.md").read_text()
