"""MQTT throughput: messages/s into dataset versions beside a bare paho subscriber.

    .venv/bin/python bench/stream.py                 # 100,000 messages
    .venv/bin/python bench/stream.py --messages 20000 --quick

A publisher in another process sends JSON sensor readings (QoS 1) to the local Mosquitto
broker as fast as the broker acknowledges them. Two subscribers take the same stream, one run
after the other, each timed from the publisher's start to the moment the last message is safe:

- floor: a bare paho-mqtt subscriber (QoS 1, the library acknowledging on receipt) appending
  each payload to a file, flushed and fsynced at the end: no framework, no checks;
- gyre: `Workspace.follow` on an ``mqtt`` source with a contract (three typed columns, a range
  rule) committing a dataset version every ``batch_messages`` messages, each acknowledged only
  after its version is committed (exactly once).

Prints both figures and the ratio (target: Gyre at least half the floor's messages/s) and
writes .bench/results/stream.json. Needs Mosquitto on 127.0.0.1:1883.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / ".bench" / "results"
HOST, PORT = "127.0.0.1", 1883

CONTRACT = """\
columns:
  - {name: sensor, type: string}
  - {name: temp, type: float, min: -50, max: 150}
  - {name: seq, type: int}
"""

PUBLISHER = """
import json, sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
topic, count = sys.argv[1], int(sys.argv[2])
client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub-" + topic[-8:])
client.max_inflight_messages_set(1000)
client.max_queued_messages_set(0)
client.connect("127.0.0.1", 1883)
client.loop_start()
last = None
for i in range(1, count + 1):
    payload = json.dumps({"sensor": f"s{i % 50}", "temp": 20 + (i % 97) / 10, "seq": i})
    last = client.publish(topic, payload, qos=1)
    if i % 20000 == 0:  # packet ids wrap at 65,535: never have more than that outstanding
        last.wait_for_publish(timeout=600)
last.wait_for_publish(timeout=600)
client.disconnect()
client.loop_stop()
"""

FLOOR = """
import os, sys, threading, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
topic, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
done = threading.Event()
received = 0
sink = open(out, "wb")
def on_message(client, userdata, message):
    global received
    sink.write(message.payload + b"\\n")
    received += 1
    if received == count:
        done.set()
def on_connect(client, userdata, flags, reason, properties):
    client.subscribe(topic, qos=1)
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
# MQTT 5 with the same receive maximum Gyre asks for: the broker never throttles or drops.
client = mqtt.Client(
    CallbackAPIVersion.VERSION2, client_id="bench-floor-" + topic[-8:], protocol=mqtt.MQTTv5
)
client.on_message = on_message
client.on_connect = on_connect
properties = Properties(PacketTypes.CONNECT)
properties.ReceiveMaximum = 65535
client.connect("127.0.0.1", 1883, properties=properties)
client.loop_start()
time.sleep(0.5)
print("ready", flush=True)
if not done.wait(120):
    sys.exit(f"the floor received {received} of {count} messages (the broker dropped some)")
sink.flush()
os.fsync(sink.fileno())
sink.close()
print(time.time(), flush=True)
client.disconnect()
client.loop_stop()
"""


def publish(topic: str, count: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", PUBLISHER, topic, str(count)])


def run_floor(count: int, work: Path) -> float:
    topic = f"bench/{uuid.uuid4().hex}"
    subscriber = subprocess.Popen(
        [sys.executable, "-c", FLOOR, topic, str(count), str(work / "floor.jsonl")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert subscriber.stdout is not None
    assert subscriber.stdout.readline().strip() == "ready"
    start = time.time()
    publisher = publish(topic, count)
    answer = subscriber.stdout.readline()
    if not answer:
        raise SystemExit("the floor subscriber failed (see above)")
    finished = float(answer)
    subscriber.wait(60)
    publisher.wait(60)
    lines = sum(1 for _ in (work / "floor.jsonl").open("rb"))
    assert lines == count, f"floor wrote {lines} of {count} messages"
    return finished - start


def run_gyre(count: int, batch_messages: int, work: Path) -> tuple[float, int, int]:
    sys.path.insert(0, str(ROOT / "src"))
    from gyre.workspace import Workspace

    topic = f"bench/{uuid.uuid4().hex}"
    project = work / "plant"
    (project / "contracts").mkdir(parents=True)
    (project / "contracts" / "readings.yaml").write_text(CONTRACT)
    source = {
        "type": "mqtt",
        "topics": [topic],
        "client_id": f"bench-gyre-{topic[-8:]}",
        "contract": "contracts/readings.yaml",
        "batch_messages": batch_messages,
        "batch_seconds": 1.0,
    }
    (project / "gyre.yaml").write_text(
        f"project: bench\nsources:\n  readings:\n    {json.dumps(source)}\n"
    )
    ws = Workspace.adopt(project)
    ws.ingest("readings")  # starts the broker's session, connects the store, warms imports
    stop = threading.Event()
    stored = {"rows": 0, "versions": 0}

    def counted(batch: object) -> None:
        stored["rows"] += batch.rows_in  # type: ignore[attr-defined]
        stored["versions"] += 1
        if stored["rows"] >= count:
            stop.set()

    start = time.time()
    publisher = publish(topic, count)
    ws.follow("readings", stop=stop, on_batch=counted)
    elapsed = time.time() - start
    publisher.wait(60)
    accepted = ws.read_dataset("readings").num_rows
    ws.close()
    return elapsed, accepted, stored["versions"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch-messages", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="20,000 messages")
    args = parser.parse_args()
    count = 20_000 if args.quick else args.messages
    with tempfile.TemporaryDirectory(prefix="gyre-bench-stream-") as tmp:
        work = Path(tmp)
        floor = run_floor(count, work)
        seconds, accepted, versions = run_gyre(count, args.batch_messages, work)
    assert accepted == count, f"gyre stored {accepted} of {count} messages"
    rows = [
        ("bare paho subscriber -> file (floor)", floor, count / floor, 1.0),
        (
            f"gyre mqtt -> {versions} dataset versions, contract",
            seconds,
            count / seconds,
            (count / seconds) / (count / floor),
        ),
    ]
    print(f"\nMQTT QoS 1, {count:,} messages, loopback publisher in another process")
    print(f"{'subscriber':<46} {'seconds':>8} {'msgs/s':>10} {'vs floor':>9}")
    for name, secs, rate, ratio in rows:
        print(f"{name:<46} {secs:>8.2f} {rate:>10,.0f} {ratio:>8.2f}x")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stream.json").write_text(
        json.dumps(
            {
                "messages": count,
                "cpus": os.cpu_count(),
                "floor_seconds": floor,
                "gyre_seconds": seconds,
                "gyre_versions": versions,
                "ratio_of_floor_rate": (count / seconds) / (count / floor),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
