"""comfyui-alert-relay: Alertmanager webhook -> DingTalk / WeCom / Feishu group robots.

Alertmanager cannot sign robot requests, does not read the robots' HTTP-200-with-errcode answers and
retries only on 5xx. This relay sits in between: it journals every notification before it tries to
deliver it, respects each robot's signing, keyword, size and rate rules, and answers Alertmanager 503
whenever a message is not delivered yet, so that Alertmanager keeps retrying instead of dropping it.
"""

from comfyui_exporter import __version__

__all__ = ["__version__"]
