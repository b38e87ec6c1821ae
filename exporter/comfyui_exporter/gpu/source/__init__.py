"""The GPU source: NVML (``nvml``), per-GPU reads (``read``), XID events (``xid``), NVML error names."""
