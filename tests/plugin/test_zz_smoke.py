import time, requests, json
from tests.plugin.harness import graph

def test_smoke(world):
    r = world.submit({"prompt": graph("sleep", seconds=0.2, steps=4), "client_id": "x"})
    assert r.status_code == 200, r.text
    world.wait_idle()
    r = requests.get(world.url + "/comfyui-exporter/v1/events?after=0", timeout=5)
    print(json.dumps(r.json(), indent=1)[:4000])
    print(world.tap.hooks)
    r = requests.get(world.url + "/api/comfyui-exporter/v1/status", timeout=5)
    print(r.json())
