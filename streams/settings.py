"""One settings object for every process, read from `KETENBUS_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KETENBUS_", extra="ignore")

    bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers; unset means: start the embedded broker."
    )
    policy_file: Path = REPO_ROOT / "policy" / "verstrekkingen.yaml"
    termijnen_file: Path = REPO_ROOT / "policy" / "termijnen.yaml"
    partitions: int = Field(3, ge=1, description="Partitions per topic when ketenbus provisions them.")
    replication: int = Field(1, ge=1)
    metrics_port: int = Field(0, ge=0, description="0 picks a free port.")
    metrics_addr: str = Field("127.0.0.1", description="Address /metrics binds to; 0.0.0.0 in a container.")
    app_id: str = "ketenbus"
    # Short group timeouts: the embedded broker joins a group only after the poll interval.
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 1.0
    max_poll_interval_s: float = 5.0
    router_batch_size: int = Field(500, ge=1)
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: Path | None = None
    log_level: str = "INFO"
    clock: Literal["wall", "virtual"] = Field(
        "wall", description="wall: live; virtual: time moves only with tick records (replay)."
    )
    sweep_interval_s: float = Field(1.0, gt=0, description="Live: how often due deadlines are fired.")
    # Connectors (connectors/): HTTP ingress, webhook egress, disclosure register.
    ingress_port: int | None = Field(
        None, ge=0, description="Port of the HTTP ingress in `ketenbus up`; unset: no ingress."
    )
    ingress_addr: str = Field("127.0.0.1", description="Address the HTTP ingress binds to.")
    ingress_max_bytes: int = Field(64 * 1024, ge=1024, description="Largest request body accepted (413).")
    api_keys: str | None = Field(None, description="Partner API keys: partner=key pairs, comma-separated.")
    api_keys_file: Path | None = Field(None, description="Partner API keys, one partner=key per line.")
    ingress_tls_cert: Path | None = Field(None, description="Server certificate: the ingress speaks HTTPS.")
    ingress_tls_key: Path | None = None
    ingress_client_ca: Path | None = Field(
        None, description="CA of partner client certificates: mTLS, the certificate CN names the partner."
    )
    ingress_rate_per_s: float = Field(
        200.0, gt=0, description="Events per second one partner may POST, sustained (429 beyond)."
    )
    ingress_burst: int = Field(400, ge=1, description="Events one partner may POST at once.")
    ingress_send_timeout_s: float = Field(5.0, gt=0, description="Broker ack wait before a 503.")
    webhooks: str | None = Field(
        None, description="Webhook endpoints: partner=https-url pairs, comma-separated."
    )
    webhook_secrets: str | None = Field(
        None, description="HMAC secrets: partner=secret pairs, comma-separated."
    )
    webhook_cafile: Path | None = Field(None, description="CA bundle to verify webhook endpoints with.")
    webhook_max_backoff_s: float = Field(60.0, gt=0)
    pg_dsn: str = Field(
        "postgresql://postgres@127.0.0.1:5432/test", description="Disclosure register database (psycopg DSN)."
    )
    pg_schema: str = Field("ketenbus", description="Schema the register's tables live in.")
