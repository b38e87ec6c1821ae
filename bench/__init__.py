"""Benchmarks of comfyui-exporter against the bundled ComfyUI simulator (``python -m bench``).

Everything runs on 127.0.0.1. Each section module returns a :class:`bench.common.SectionResult`;
``bench.report`` turns them into ``bench/RESULTS.md``. See docs/benchmarks.md.
"""
