"""Writes one message per key to a Kafka topic with kafka-python's default partitioner (the Java
client's murmur2), as an application that wrote the topic before the relay would.

Usage: kafka_python_produce.py BROKERS TOPIC VALUE KEY... ; prints "KEY PARTITION" per key."""

import sys

from kafka import KafkaProducer


def main():
    brokers, topic, value, keys = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    producer = KafkaProducer(bootstrap_servers=brokers)
    sends = [(key, producer.send(topic, key=key.encode(), value=value.encode())) for key in keys]
    producer.flush()
    for key, send in sends:
        print(key, send.get(timeout=30).partition)
    producer.close()


if __name__ == "__main__":
    main()
