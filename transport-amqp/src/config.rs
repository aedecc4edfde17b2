//! Configuration in two stages: [`RawAmqpConfig`] as written in a file (serde, unknown keys
//! rejected, every key with a default except the certificate files), then [`AmqpConfig`] with
//! the certificates read and every value checked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why a configuration could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A certificate or key file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("{path}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A value is out of range.
    #[error("{key}: {problem}")]
    Value {
        /// The configuration key.
        key: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// The AMQP link as configured (the `[transport.amqp]` table of the hub and node configuration).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAmqpConfig {
    /// Broker host name; also the name its TLS certificate must carry. Default `localhost`.
    #[serde(default = "defaults::host")]
    pub host: String,
    /// Broker AMQPS port. Default 5671.
    #[serde(default = "defaults::port")]
    pub port: u16,
    /// Virtual host. Default `cats`.
    #[serde(default = "defaults::vhost")]
    pub vhost: String,
    /// The CATS CA certificate (PEM): the only root the broker's certificate may chain to.
    pub ca_file: PathBuf,
    /// This party's TLS client certificate (PEM); its CN is the broker user (`hub`, `node-kz`).
    pub cert_file: PathBuf,
    /// The private key of `cert_file` (PEM, PKCS#8).
    pub key_file: PathBuf,
    /// Deliveries the broker may push before the first is acked (basic.qos). Default 256.
    #[serde(default = "defaults::prefetch")]
    pub prefetch: u16,
    /// Published messages awaiting their confirm at once. Default 1024.
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: usize,
    /// TCP + TLS + AMQP handshake timeout, milliseconds. Default 10000.
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Timeout of every other broker wait (publish, confirm, ack), milliseconds. Default 30000.
    #[serde(default = "defaults::operation_timeout_ms")]
    pub operation_timeout_ms: u64,
    /// AMQP heartbeat, seconds. Default 10.
    #[serde(default = "defaults::heartbeat_s")]
    pub heartbeat_s: u16,
    /// First reconnection delay, milliseconds; doubled after each failure. Default 100.
    #[serde(default = "defaults::reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    /// Longest reconnection delay, milliseconds. Default 5000.
    #[serde(default = "defaults::reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// The hub only: how many partitions its inbound queue has (queues `cats.hub.in`,
    /// `cats.hub.in.1` … `cats.hub.in.<N-1>`, fed by the consistent-hash exchange `cats.hub.in`
    /// keyed on the MRN). Every hub process sharing a broker must say the same. Default 1.
    #[serde(default = "defaults::partitions")]
    pub partitions: u16,
    /// The hub only: the partitions this process consumes from at once; it also consumes the
    /// others, as a standby (single active consumer), after `standby_delay_ms`. Empty: all at
    /// once. Default empty.
    #[serde(default)]
    pub preferred_partitions: Vec<u16>,
    /// The hub only: delay before the standby consumers of the non-preferred partitions are
    /// registered, milliseconds. Default 5000.
    #[serde(default = "defaults::standby_delay_ms")]
    pub standby_delay_ms: u64,
}

mod defaults {
    pub fn host() -> String {
        "localhost".to_owned()
    }
    pub fn port() -> u16 {
        5671
    }
    pub fn vhost() -> String {
        "cats".to_owned()
    }
    pub fn prefetch() -> u16 {
        256
    }
    pub fn max_in_flight() -> usize {
        1024
    }
    pub fn connect_timeout_ms() -> u64 {
        10_000
    }
    pub fn operation_timeout_ms() -> u64 {
        30_000
    }
    pub fn heartbeat_s() -> u16 {
        10
    }
    pub fn reconnect_min_ms() -> u64 {
        100
    }
    pub fn reconnect_max_ms() -> u64 {
        5_000
    }
    pub fn partitions() -> u16 {
        1
    }
    pub fn standby_delay_ms() -> u64 {
        5_000
    }
}

/// The most partitions the hub's inbound queue may have.
pub const MAX_PARTITIONS: u16 = 64;

/// A client identity for TLS: the CA to trust and this party's certificate and key, all PEM.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The CATS CA certificate(s), PEM.
    pub ca_pem: String,
    /// The client certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// The client's private key, PEM (PKCS#8).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl TlsIdentity {
    /// Reads the CA certificate, the client certificate and its key from PEM files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<TlsIdentity, ConfigError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let ca_pem = String::from_utf8(read(ca)?).map_err(|_| ConfigError::Invalid {
            path: ca.to_owned(),
            problem: "not a PEM file (not text)",
        })?;
        let identity = TlsIdentity {
            ca_pem,
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        };
        for (path, text, marker, problem) in [
            (
                ca,
                identity.ca_pem.as_bytes(),
                "CERTIFICATE",
                "no PEM certificate",
            ),
            (
                cert,
                &identity.cert_pem[..],
                "CERTIFICATE",
                "no PEM certificate",
            ),
            (
                key,
                &identity.key_pem[..],
                "PRIVATE KEY",
                "no PEM private key",
            ),
        ] {
            if !contains(text, marker.as_bytes()) {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    problem,
                });
            }
        }
        Ok(identity)
    }

    /// The identity for a party from a development PKI directory (`cats certs init`):
    /// `ca.pem` and `<name>.pem` / `<name>.key.pem`, e.g. `node-kz` or `hub-client`.
    pub fn from_pki_dir(dir: &Path, name: &str) -> Result<TlsIdentity, ConfigError> {
        TlsIdentity::from_files(
            &dir.join("ca.pem"),
            &dir.join(format!("{name}.pem")),
            &dir.join(format!("{name}.key.pem")),
        )
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The AMQP link, resolved: certificates loaded, values checked.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// Broker host name (and TLS server name).
    pub host: String,
    /// Broker AMQPS port.
    pub port: u16,
    /// Virtual host.
    pub vhost: String,
    /// The TLS client identity.
    pub tls: TlsIdentity,
    /// basic.qos prefetch.
    pub prefetch: u16,
    /// Unconfirmed publishes at once.
    pub max_in_flight: usize,
    /// Connection handshake timeout.
    pub connect_timeout: Duration,
    /// Timeout of every other broker wait.
    pub operation_timeout: Duration,
    /// AMQP heartbeat in seconds.
    pub heartbeat_s: u16,
    /// First reconnection delay.
    pub reconnect_min: Duration,
    /// Longest reconnection delay.
    pub reconnect_max: Duration,
    /// Partitions of the hub's inbound queue (1: `cats.hub.in` alone).
    pub partitions: u16,
    /// Partitions consumed at once; the others after `standby_delay` (empty: all at once).
    pub preferred_partitions: Vec<u16>,
    /// Delay before the standby consumers are registered.
    pub standby_delay: Duration,
}

impl AmqpConfig {
    /// A configuration with every default (see [`RawAmqpConfig`]) for `host:port`.
    pub fn new(host: impl Into<String>, port: u16, tls: TlsIdentity) -> AmqpConfig {
        AmqpConfig {
            host: host.into(),
            port,
            vhost: defaults::vhost(),
            tls,
            prefetch: defaults::prefetch(),
            max_in_flight: defaults::max_in_flight(),
            connect_timeout: Duration::from_millis(defaults::connect_timeout_ms()),
            operation_timeout: Duration::from_millis(defaults::operation_timeout_ms()),
            heartbeat_s: defaults::heartbeat_s(),
            reconnect_min: Duration::from_millis(defaults::reconnect_min_ms()),
            reconnect_max: Duration::from_millis(defaults::reconnect_max_ms()),
            partitions: defaults::partitions(),
            preferred_partitions: Vec::new(),
            standby_delay: Duration::from_millis(defaults::standby_delay_ms()),
        }
    }

    /// Resolves a raw configuration: reads the certificates and checks the values.
    pub fn resolve(raw: &RawAmqpConfig) -> Result<AmqpConfig, ConfigError> {
        let value = |key, problem| ConfigError::Value { key, problem };
        if raw.host.is_empty() {
            return Err(value("host", "must not be empty"));
        }
        if raw.vhost.is_empty() {
            return Err(value("vhost", "must not be empty"));
        }
        if raw.prefetch == 0 {
            return Err(value("prefetch", "must be at least 1"));
        }
        if raw.max_in_flight == 0 {
            return Err(value("max_in_flight", "must be at least 1"));
        }
        if raw.connect_timeout_ms == 0 || raw.operation_timeout_ms == 0 {
            return Err(value("*_timeout_ms", "must be at least 1"));
        }
        if raw.reconnect_min_ms == 0 || raw.reconnect_min_ms > raw.reconnect_max_ms {
            return Err(value(
                "reconnect_min_ms",
                "must be at least 1 and at most reconnect_max_ms",
            ));
        }
        if raw.partitions == 0 || raw.partitions > MAX_PARTITIONS {
            return Err(value("partitions", "must be from 1 to 64"));
        }
        if raw
            .preferred_partitions
            .iter()
            .any(|p| *p >= raw.partitions)
        {
            return Err(value(
                "preferred_partitions",
                "every partition must be below partitions (they are numbered from 0)",
            ));
        }
        Ok(AmqpConfig {
            host: raw.host.clone(),
            port: raw.port,
            vhost: raw.vhost.clone(),
            tls: TlsIdentity::from_files(&raw.ca_file, &raw.cert_file, &raw.key_file)?,
            prefetch: raw.prefetch,
            max_in_flight: raw.max_in_flight,
            connect_timeout: Duration::from_millis(raw.connect_timeout_ms),
            operation_timeout: Duration::from_millis(raw.operation_timeout_ms),
            heartbeat_s: raw.heartbeat_s,
            reconnect_min: Duration::from_millis(raw.reconnect_min_ms),
            reconnect_max: Duration::from_millis(raw.reconnect_max_ms),
            partitions: raw.partitions,
            preferred_partitions: raw.preferred_partitions.clone(),
            standby_delay: Duration::from_millis(raw.standby_delay_ms),
        })
    }

    /// The `amqps://` URI of the broker: SASL EXTERNAL, heartbeat and connection timeout set.
    pub fn uri(&self) -> String {
        let vhost: String = self
            .vhost
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect();
        format!(
            "amqps://{}:{}/{}?auth_mechanism=external&heartbeat={}&connection_timeout={}",
            self.host,
            self.port,
            vhost,
            self.heartbeat_s,
            self.connect_timeout.as_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_like: serde_json::Value) -> Result<RawAmqpConfig, serde_json::Error> {
        serde_json::from_value(toml_like)
    }

    #[test]
    fn defaults_apply_and_unknown_keys_are_refused() {
        let config = raw(serde_json::json!({
            "ca_file": "ca.pem", "cert_file": "c.pem", "key_file": "k.pem"
        }))
        .expect("minimal config");
        assert_eq!(config.port, 5671);
        assert_eq!(config.vhost, "cats");
        assert_eq!(config.prefetch, 256);
        assert_eq!(config.partitions, 1);
        assert!(config.preferred_partitions.is_empty());
        assert!(
            raw(serde_json::json!({
                "ca_file": "ca.pem", "cert_file": "c.pem", "key_file": "k.pem", "prefetsh": 1
            }))
            .is_err()
        );
    }

    #[test]
    fn missing_certificate_is_a_read_error() {
        let mut config = raw(serde_json::json!({
            "ca_file": "/nonexistent/ca.pem", "cert_file": "c.pem", "key_file": "k.pem"
        }))
        .expect("config");
        assert!(matches!(
            AmqpConfig::resolve(&config),
            Err(ConfigError::Read { .. })
        ));
        config.partitions = 0;
        assert!(matches!(
            AmqpConfig::resolve(&config),
            Err(ConfigError::Value {
                key: "partitions",
                ..
            })
        ));
        config.partitions = 4;
        config.preferred_partitions = vec![1, 4];
        assert!(matches!(
            AmqpConfig::resolve(&config),
            Err(ConfigError::Value {
                key: "preferred_partitions",
                ..
            })
        ));
        config.preferred_partitions = vec![1, 3];
        config.prefetch = 0;
        assert!(matches!(
            AmqpConfig::resolve(&config),
            Err(ConfigError::Value {
                key: "prefetch",
                ..
            })
        ));
    }

    #[test]
    fn uri_uses_external_and_escapes_the_vhost() {
        let tls = TlsIdentity {
            ca_pem: String::new(),
            cert_pem: Vec::new(),
            key_pem: Vec::new(),
        };
        let mut config = AmqpConfig::new("localhost", 26710, tls);
        assert_eq!(
            config.uri(),
            "amqps://localhost:26710/cats?auth_mechanism=external&heartbeat=10&connection_timeout=10000"
        );
        config.vhost = "/".into();
        assert!(config.uri().contains(":26710/%2F?"));
    }
}
