"""The project's embedded NATS server: config, credentials, start/stop, client connect."""

from embedded_nats.client import BusAuthRefused, BusEndpoint, BusUnreachable, connect
from embedded_nats.credentials import ROLES, Role, load_or_create
from embedded_nats.paths import CONFIG_FILE, nats_server_binary, state_dir
from embedded_nats.server import NatsServer, ServerInfo, render_config

__all__ = [
    "CONFIG_FILE",
    "ROLES",
    "BusAuthRefused",
    "BusEndpoint",
    "BusUnreachable",
    "NatsServer",
    "Role",
    "ServerInfo",
    "connect",
    "load_or_create",
    "nats_server_binary",
    "render_config",
    "state_dir",
]
