"""The model: typed events in, the state the collector renders out. Pure: no I/O, no clock, no threads.

``events`` are what sources emit; ``parsers`` and ``classify`` turn ComfyUI's JSON into them;
``history_tracker`` decides which history entries are new; ``state`` is the reducer.
"""
