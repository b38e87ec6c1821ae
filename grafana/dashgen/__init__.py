"""What grafana/generate.py writes, split by the path the numbers take to reach a panel.

settings (thresholds mirrored from prometheus/rules, URLs) -> blocks (selectors, queries, colours,
links) -> panels (one builder per Grafana panel type) -> overview/<row>.py (the panels of each row)
-> dashboard (grid positions, ids, variables, the document) -> generate.py (JSON on disk).

Standard library only, and imported with grafana/ on sys.path rather than installed, so the generator
runs from any checkout without the exporter's virtualenv.
"""
