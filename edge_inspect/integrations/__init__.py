"""Plant integration: MQTT publisher, Prometheus metrics, health endpoints, systemd notification.

Each module is imported only where used (paho-mqtt, prometheus_client and Flask stay optional at
import time of the core package).
"""
