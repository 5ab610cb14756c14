"""Connecting through Temporal's environment configuration (profiles + TEMPORAL_* variables):
Temporal Cloud with an API key, an mTLS cluster, and the dev server, with STUDIO_* overrides."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from temporalio.service import ConnectConfig, TLSConfig

from config.settings import StudioSettings
from studio.api import Studio
from studio.temporal import connect, connect_config, describe_target


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA certificate and client key pair (openssl, never downloaded)."""
    folder = tmp_path_factory.mktemp("certs")
    key, cert = folder / "client.key", folder / "client.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=studio-worker"],
        check=True,
        capture_output=True,
    )
    return {"key": key, "cert": cert}


def profile_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "temporal.toml"
    path.write_text(body)
    return path


def test_a_cloud_profile_with_mtls_and_an_api_key_builds_that_connection(
    tmp_path: Path, certs: dict[str, Path]
) -> None:
    config_file = profile_file(
        tmp_path,
        f"""
[profile.prod]
address = "studio.a1b2c.tmprl.cloud:7233"
namespace = "studio.a1b2c"
api_key = "tmprl-key-never-logged"

[profile.prod.tls]
server_name = "studio.a1b2c.tmprl.cloud"
server_ca_cert_path = "{certs["cert"]}"
client_cert_path = "{certs["cert"]}"
client_key_path = "{certs["key"]}"
""",
    )
    settings = StudioSettings(
        data_dir=tmp_path, temporal_profile="prod", temporal_config_file=config_file
    )
    config = connect_config(settings, environ={})
    assert config["target_host"] == "studio.a1b2c.tmprl.cloud:7233"
    assert config["namespace"] == "studio.a1b2c"
    assert config["api_key"] == "tmprl-key-never-logged"
    tls = config["tls"]
    assert isinstance(tls, TLSConfig) and tls.domain == "studio.a1b2c.tmprl.cloud"
    assert tls.client_cert == certs["cert"].read_bytes()
    assert tls.client_private_key == certs["key"].read_bytes()
    # What the SDK hands its Rust core, built without connecting:
    namespace = config.pop("namespace")
    bridge = ConnectConfig(**config)._to_bridge_config()
    assert bridge.target_url == "https://studio.a1b2c.tmprl.cloud:7233" and namespace
    assert bridge.api_key == "tmprl-key-never-logged"
    assert bridge.tls_config is not None and bridge.tls_config.domain == tls.domain
    assert bridge.tls_config.client_private_key == certs["key"].read_bytes()
    shown = describe_target({**config, "namespace": namespace})
    assert "tmprl-key" not in shown and "(tls, api key)" in shown


def test_temporal_environment_variables_configure_cloud_without_a_file(tmp_path: Path) -> None:
    env = {
        "TEMPORAL_ADDRESS": "eu.tmprl.cloud:7233",
        "TEMPORAL_NAMESPACE": "studio.eu",
        "TEMPORAL_API_KEY": "env-key",
    }
    config = connect_config(StudioSettings(data_dir=tmp_path), environ=env)
    assert (config["target_host"], config["namespace"], config["api_key"], config["tls"]) == (
        "eu.tmprl.cloud:7233",
        "studio.eu",
        "env-key",
        True,  # an API key turns TLS on
    )


def test_studio_variables_override_the_profile(tmp_path: Path) -> None:
    env = {"TEMPORAL_ADDRESS": "eu.tmprl.cloud:7233", "TEMPORAL_NAMESPACE": "studio.eu"}
    settings = StudioSettings(data_dir=tmp_path, temporal_address="10.1.2.3:7233")
    config = connect_config(settings, environ=env)
    assert config["target_host"] == "10.1.2.3:7233" and config["namespace"] == "studio.eu"
    bare = connect_config(StudioSettings(data_dir=tmp_path), environ={})
    assert (bare["target_host"], bare["namespace"]) == ("127.0.0.1:7233", "default")
    assert "tls" not in bare and "api_key" not in bare


async def test_a_profile_pointing_at_the_dev_server_runs_an_operation(
    tmp_path: Path, settings: StudioSettings, studio: Studio, user_id: str
) -> None:
    config_file = profile_file(
        tmp_path,
        f"""
[profile.local]
address = "{settings.temporal_address}"
namespace = "default"
""",
    )
    via_profile = StudioSettings(
        **{
            k: v
            for k, v in settings.model_dump().items()
            if k in settings.model_fields_set
            and k not in ("temporal_address", "temporal_namespace")
        },
        temporal_profile="local",
        temporal_config_file=config_file,
    )
    assert "temporal_address" not in via_profile.model_fields_set
    client = await connect(via_profile)
    prompt = f"through a profile {uuid.uuid4().hex[:6]}"
    result = await Studio(client, via_profile).generate_image(prompt, user_id=user_id)
    assert result.blobs and result.blobs[0].location.startswith("blob:")
