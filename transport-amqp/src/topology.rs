//! The names of the CATS topology in RabbitMQ, as `deploy/rabbitmq/definitions.json` declares
//! them, and the mapping between broker users and CATS identities.
//!
//! The transport never declares anything: users have no `configure` permission, the topology is
//! loaded by the broker from its definitions.

use cats_transport::contract::{CountryCode, PeerIdentity};

/// The exchange nodes publish to (the hub's inbound queue is bound to it).
pub const HUB_INBOUND_EXCHANGE: &str = "cats.hub.in";
/// The hub's inbound quorum queue.
pub const HUB_INBOUND_QUEUE: &str = "cats.hub.in";
/// The direct exchange the hub publishes to; the routing key is the country code.
pub const NODES_EXCHANGE: &str = "cats.nodes";
/// The topic exchange of dead letters; the routing key is the name of the queue the message
/// was dead-lettered from, and each consumer queue `Q` has its dead-letter queue `Q.dlq`.
pub const DEAD_LETTER_EXCHANGE: &str = "cats.dlx";

/// Header carrying the reason a receiver gave when it rejected a message.
pub const REASON_HEADER: &str = "x-cats-reason";
/// Header carrying the broker user that rejected a message.
pub const REJECTED_BY_HEADER: &str = "x-cats-rejected-by";
/// Header carrying the `user_id` (the sender) of a rejected message.
pub const ORIGINAL_USER_HEADER: &str = "x-cats-original-user-id";
/// Header carrying the queue a rejected message was consumed from.
pub const ORIGINAL_QUEUE_HEADER: &str = "x-cats-original-queue";
/// Header carrying the partition key (the MRN) of a message.
pub const PARTITION_KEY_HEADER: &str = "x-cats-partition-key";

/// The queue of partition `index` of the hub's inbound queue: `cats.hub.in` for partition 0
/// (the one queue when there is one partition, declared by the definitions), `cats.hub.in.<i>`
/// for the others (declared by the hub, with the same arguments).
pub fn hub_partition_queue(index: u16) -> String {
    if index == 0 {
        HUB_INBOUND_QUEUE.to_owned()
    } else {
        format!("{HUB_INBOUND_QUEUE}.{index}")
    }
}

/// Binding weight of every partition queue on the consistent-hash exchange `cats.hub.in`: the
/// same for all, so each takes an equal share of the MRN hash ring.
pub const PARTITION_WEIGHT: &str = "1";

/// The queue a party consumes from: `cats.hub.in` for the hub, `cats.node.KZ` for node KZ.
pub fn consumer_queue(identity: PeerIdentity) -> String {
    match identity {
        PeerIdentity::Hub => HUB_INBOUND_QUEUE.to_owned(),
        PeerIdentity::Node(country) => format!("cats.node.{}", country.as_str()),
    }
}

/// The dead-letter queue of a consumer queue.
pub fn dead_letter_queue(consumer_queue: &str) -> String {
    format!("{consumer_queue}.dlq")
}

/// The broker user of a party, which is also the common name of its TLS client certificate:
/// `hub`, `node-kz`.
pub fn user_name(identity: PeerIdentity) -> String {
    match identity {
        PeerIdentity::Hub => "hub".to_owned(),
        PeerIdentity::Node(country) => format!("node-{}", country.as_str().to_ascii_lowercase()),
    }
}

/// The party a broker user stands for (the inverse of [`user_name`]); `None` for any other name.
pub fn identity_of_user(user: &str) -> Option<PeerIdentity> {
    if user == "hub" {
        return Some(PeerIdentity::Hub);
    }
    let country = user.strip_prefix("node-")?;
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    CountryCode::parse(&country.to_ascii_uppercase())
        .ok()
        .map(PeerIdentity::Node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_round_trip() {
        for identity in [
            PeerIdentity::Hub,
            PeerIdentity::Node(CountryCode::KZ),
            PeerIdentity::Node(CountryCode::GE),
        ] {
            assert_eq!(identity_of_user(&user_name(identity)), Some(identity));
        }
        assert_eq!(user_name(PeerIdentity::Node(CountryCode::AZ)), "node-az");
    }

    #[test]
    fn other_users_are_nobody() {
        for user in [
            "", "guest", "node-", "node-KZ", "node-kzz", "node-k", "hubx", "node-1z",
        ] {
            assert_eq!(identity_of_user(user), None, "{user}");
        }
    }

    #[test]
    fn partition_queues() {
        assert_eq!(hub_partition_queue(0), "cats.hub.in");
        assert_eq!(hub_partition_queue(3), "cats.hub.in.3");
        let definitions = include_str!("../../deploy/rabbitmq/definitions.json");
        assert!(definitions.contains("\"x-consistent-hash\""));
        assert!(definitions.contains("\"x-single-active-consumer\": true"));
    }

    #[test]
    fn queue_names_match_the_definitions() {
        assert_eq!(consumer_queue(PeerIdentity::Hub), "cats.hub.in");
        assert_eq!(
            consumer_queue(PeerIdentity::Node(CountryCode::KZ)),
            "cats.node.KZ"
        );
        assert_eq!(dead_letter_queue("cats.node.KZ"), "cats.node.KZ.dlq");
        let definitions = include_str!("../../deploy/rabbitmq/definitions.json");
        for name in [
            "cats.hub.in",
            "cats.nodes",
            "cats.dlx",
            "cats.node.KZ.dlq",
            "cats.hub.in.dlq",
        ] {
            assert!(definitions.contains(&format!("\"{name}\"")), "{name}");
        }
    }
}
