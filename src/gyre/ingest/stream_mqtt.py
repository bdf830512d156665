"""MQTT topics as a source (IoT sensors), QoS 1, exactly once into dataset versions.

    sources:
      sensors:
        type: mqtt
        host: 127.0.0.1            # port 1883; tls: true for 8883
        topics: [factory/+/temperature]
        username: ${MQTT_USER}     # optional; ${ENV} references are expanded
        password: ${MQTT_PASSWORD}

Gyre connects with MQTT 5, a persistent session (``clean_start`` off, a fixed client id,
``session_expiry`` seconds) and acknowledges each message only after the version holding it is
committed (paho's manual acknowledgement), so the broker keeps every message a crash left
unstored and sends it again. It asks for up to 65,535 unacknowledged messages in flight, so a
batch of thousands of messages is not throttled to the broker's default of 20.

MQTT has no offsets. To recognise a message delivered again after its batch was committed but
before the acknowledgement reached the broker, the committed state keeps, for each message of
the last two batches, its packet id and a 64-bit digest of its topic and payload. A broker
resending an unacknowledged message on a resumed session sets the DUP flag and keeps the packet
id, which it cannot give another message until the first is acknowledged; so a DUP message whose
packet id *and* digest were committed is acknowledged and not stored again, while a sensor that
repeats the same reading is stored every time. A message's offset is its number among all
messages this source has committed, given when its batch is handed over. After the connection
drops, messages received on the old connection and not yet committed are dropped (the broker
resends them on the new one).

The session starts when the source first connects: messages published to the topics before
then are not kept for it by the broker (run ``gyre ingest SOURCE`` once to start it). A broker
keeps at most its ``max_queued_messages`` (Mosquitto: 1000 by default) for a session that is
offline; raise it on the broker if the source may be down for long.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from gyre.core.errors import ConfigError, SourceError
from gyre.ingest.stream_source import Message, StreamOptions, StreamSource

_RECENT_BATCHES = 2


class MqttSourceConfig(StreamOptions):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    topics: list[str] = Field(min_length=1)
    qos: Literal[1] = 1
    client_id: str | None = None
    """Fixed per source (default ``gyre-<source>``): the broker keeps the session under it."""
    session_expiry: int = Field(7 * 24 * 3600, ge=60)
    """Seconds the broker keeps the session (and its messages) while the source is offline."""
    username: str | None = None
    password: str | None = None
    tls: bool = False
    keepalive: int = Field(30, ge=5, le=3600)
    connect_timeout: float = Field(10.0, gt=0)


class MqttSource(StreamSource):
    """``type: mqtt``: topics of an MQTT broker, QoS 1, a persistent session."""

    module = "gyre.ingest.stream_mqtt"
    config_class = "MqttSourceConfig"


def open_consumer(options: Any, state: Mapping[str, Any], source: str) -> MqttConsumer:
    assert isinstance(options, MqttSourceConfig)
    return MqttConsumer(options, state, source)


def message_digest(topic: str, payload: bytes) -> str:
    import blake3

    return blake3.blake3(topic.encode() + b"\0" + payload).hexdigest(length=8)


class MqttConsumer:
    def __init__(self, options: MqttSourceConfig, state: Mapping[str, Any], source: str) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise ConfigError(
                "the mqtt source needs paho-mqtt",
                hint="pip install 'gyre[streams]'",
            ) from None
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        from gyre.ingest.source_batch import expand_env

        self.origin = f"mqtt://{options.host}:{options.port}/{','.join(options.topics)}"
        self._options = options
        self._inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._connected = threading.Event()
        self._refused: str | None = None
        self._generation = 0  # connections made; messages from an earlier one are stale
        self._seen_generation = 0
        # Packet id and digest of committed messages whose acknowledgement may not have
        # reached the broker.
        self._committed = {key for batch in state.get("recent", []) for key in batch}
        client_id = options.client_id or f"gyre-{source}"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if options.username is not None:
            password = options.password
            client.username_pw_set(
                expand_env(options.username, key="username"),
                expand_env(password, key="password") if password is not None else None,
            )
        if options.tls:
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = options.session_expiry
        properties.ReceiveMaximum = 65535
        self._client = client
        try:
            client.connect(
                options.host,
                options.port,
                keepalive=options.keepalive,
                clean_start=False,
                properties=properties,
            )
        except (OSError, ValueError) as exc:
            raise SourceError(
                f"cannot reach the MQTT broker at {options.host}:{options.port}: {exc}",
                hint="check host and port in gyre.yaml and that the broker is running",
                retryable=True,
            ) from None
        client.loop_start()
        if not self._connected.wait(options.connect_timeout) or self._refused:
            client.loop_stop()
            answer = (
                f"refused the connection: {self._refused}" if self._refused else "did not answer"
            )
            raise SourceError(
                f"the MQTT broker at {options.host}:{options.port} {answer} "
                f"(client id {client_id})",
                hint="check username, password and the broker's access rules",
            )

    # -- paho's network thread
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            self._connected.set()
            return
        # Subscribing again is harmless with a kept session and needed with a new one.
        client.subscribe([(topic, self._options.qos) for topic in self._options.topics])
        self._generation += 1
        self._connected.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._inbox.put(
            Message(
                payload=message.payload,
                topic=message.topic,
                offset=0,
                received=time.time(),
                handle=(message.mid, message.dup, self._generation),
            )
        )

    # -- Consumer
    def receive(self, max_messages: int, timeout: float) -> list[Message]:
        got: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(got) < max_messages:
            try:
                if got:
                    message = self._inbox.get_nowait()
                else:
                    message = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            mid, dup, generation = message.handle
            if generation != self._generation:
                continue  # received before the connection dropped; the broker resends it
            if dup and self._committed:
                key = f"{mid}:{message_digest(message.topic, message.payload)}"
                if key in self._committed:  # stored already; its acknowledgement was lost
                    self._committed.discard(key)
                    self._client.ack(mid, self._options.qos)
                    continue
            got.append(message)
        return got

    def lost_messages_in_hand(self) -> bool:
        if self._seen_generation in (0, self._generation):
            self._seen_generation = self._generation
            return False
        self._seen_generation = self._generation
        return True

    def still_valid(self, message: Message) -> bool:
        return bool(message.handle[2] == self._generation)

    def position_after(self, batch: list[Message], state: Mapping[str, Any]) -> dict[str, Any]:
        committed = int(state.get("messages", 0))
        for number, message in enumerate(batch, start=committed + 1):
            message.offset = number
        recent = list(state.get("recent", []))[-(_RECENT_BATCHES - 1) :]
        recent.append([f"{m.handle[0]}:{message_digest(m.topic, m.payload)}" for m in batch])
        return {"messages": committed + len(batch), "recent": recent}

    def acknowledge(self, batch: list[Message], state: Mapping[str, Any]) -> None:
        self._committed = {key for keys in state["recent"] for key in keys}
        for message in batch:
            self._client.ack(message.handle[0], self._options.qos)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
