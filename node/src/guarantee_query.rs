//! The guarantee balance query (CC034C → CC037C) at a node.
//!
//! The balance of a comprehensive guarantee lives only in the hub's ledger, so a node cannot
//! answer a CC034C itself. It forwards the query to the hub over the existing transport: the
//! national system's CC034C, re-addressed (`messageSender` `NTA.<country>`, recipient the hub, a
//! message identification of the node's own, `correlationIdentifier` the national system's
//! message identification), signed by the node and sent through its outbox like any CD message.
//! The hub answers with a CC037C signed by the hub (see `cats_hub::guarantee`), whose
//! `correlationIdentifier` is the national system's; the node puts it on the national outbound
//! stream (pull, SSE, webhook) re-addressed to the requester. The national API answers the POST
//! with `Accepted`; the CC037C follows on the stream.
//!
//! The node API has the same question as a plain request ([`Engine::balance_of`],
//! `GET /api/v1/guarantees/{grn}/balance?requester=TIN`): the node builds the CC034C, sends it
//! the same way and waits for the CC037C.
//!
//! This is a child module of `engine` (it uses the engine's store, signer and outbox).

use super::*;

impl Engine {
    /// A CC034C from the national system: forwarded to the hub (see the module documentation).
    pub(super) async fn forward_balance_query(
        &self,
        q: &ncts::CC034CType,
    ) -> Result<Submission, EngineError> {
        let id = self.new_message_id();
        let mut forwarded = q.clone();
        forwarded.message_sender = format!("NTA.{}", self.country);
        forwarded.message_recipient = "CATS.HUB".to_owned();
        forwarded.message_identification = id.clone();
        forwarded.correlation_identifier = Some(q.message_identification.clone());
        let body = codec::encode(&Message::CC034C(Box::new(forwarded)));
        let now = Utc::now();
        let fields = EnvelopeHeaderFields {
            message_id: id.clone(),
            message_type: "CC034C".into(),
            sender: PeerIdentity::Node(self.country),
            recipient: PeerIdentity::Hub,
            correlation_id: Some(q.message_identification.clone()),
            mrn: None,
            prepared_at: now,
        };
        let sealed = self
            .signer
            .seal(&fields, &body)
            .map_err(|e| EngineError::Seal(e.to_string()))?;
        let _guard = self.lock.lock().await;
        let mut tx = self.store.begin().await?;
        store::insert_message(
            &mut tx,
            &MessageRow {
                movement_id: None,
                direction: "in",
                message_type: "CC034C",
                message_id: &q.message_identification,
                party: "national-system",
                body: &codec::encode(&Message::CC034C(Box::new(q.clone()))),
                envelope: None,
                at: now.timestamp_millis(),
            },
        )
        .await?;
        self.outbox
            .enqueue(
                &mut tx,
                &Outbound {
                    message_id: id.clone(),
                    destination: Destination::Hub,
                    partition_key: None,
                    bytes: bytes::Bytes::from(sealed.clone()),
                },
            )
            .await?;
        store::insert_message(
            &mut tx,
            &MessageRow {
                movement_id: None,
                direction: "out",
                message_type: "CC034C",
                message_id: &id,
                party: "hub",
                body: &body,
                envelope: Some(&sealed),
                at: now.timestamp_millis(),
            },
        )
        .await?;
        self.committed(tx, true).await?;
        tracing::info!(
            id,
            request = q.message_identification,
            "guarantee query forwarded to the hub"
        );
        Ok(Submission {
            answer: Answer::Accepted,
            mrn: None,
            lrn: None,
        })
    }

    /// The hub's CC037C: onto the national outbound stream, addressed to the requester.
    pub(super) async fn deliver_balance(
        &self,
        tx: &mut Tx<'static>,
        answer: &ncts::CC037CType,
    ) -> Result<(), EngineError> {
        let now = whole_seconds(Utc::now());
        let mut national = answer.clone();
        national.message_sender = format!("NTA.{}", self.country);
        national.message_recipient = answer.requester.identification_number.clone();
        national.message_identification = self.new_message_id();
        national.preparation_date_and_time = now.naive_utc();
        let xml =
            String::from_utf8_lossy(&codec::encode(&Message::CC037C(Box::new(national.clone()))))
                .into_owned();
        store::insert_message(
            tx,
            &MessageRow {
                movement_id: None,
                direction: "out",
                message_type: "CC037C",
                message_id: &national.message_identification,
                party: "national-system",
                body: xml.as_bytes(),
                envelope: None,
                at: now.timestamp_millis(),
            },
        )
        .await?;
        store::append_stream(
            tx,
            None,
            "CC037C",
            None,
            None,
            &national.message_identification,
            "",
            now.timestamp_millis(),
            &xml,
        )
        .await?;
        Ok(())
    }

    /// Asks the hub for the balance of `grn` for `requester` (a CC034C built here, checked and
    /// forwarded as one from the national system) and waits up to `wait` for the CC037C.
    /// `Err(answer)`: the CC034C was refused (its NACK); `Ok(None)`: no answer in time.
    pub async fn balance_of(
        &self,
        grn: &str,
        requester: &str,
        wait: std::time::Duration,
    ) -> Result<Result<Option<String>, Answer>, EngineError> {
        let id = format!("API{}", random_hex(10));
        let query = ncts::CC034CType {
            phase_id: None,
            message_sender: requester.to_owned(),
            message_recipient: format!("NTA.{}", self.country),
            preparation_date_and_time: whole_seconds(Utc::now()).naive_utc(),
            message_identification: id.clone(),
            message_type: ncts::MessageTypes::CC034C,
            correlation_identifier: None,
            requester: ncts::RequesterType01 {
                identification_number: requester.to_owned(),
                role: "1".to_owned(),
            },
            guarantee_reference: vec![ncts::GuaranteeReferenceType06 {
                sequence_number: 1,
                grn: grn.to_owned(),
                guarantee_query: ncts::GuaranteeQueryType {
                    query_identifier: "1".to_owned(),
                    period_from_date: None,
                    period_to_date: None,
                },
                owner: None,
                access_code: ncts::AccessCodeType02 {
                    access_code: "0000".to_owned(),
                },
            }],
        };
        let mut head = self.stream.subscribe();
        let after = *head.borrow_and_update();
        let submitted = self
            .submit(&codec::encode(&Message::CC034C(Box::new(query))))
            .await?;
        if submitted.answer != Answer::Accepted {
            return Ok(Err(submitted.answer));
        }
        let marker = format!("<correlationIdentifier>{id}</correlationIdentifier>");
        let deadline = tokio::time::Instant::now() + wait;
        let mut cursor = after;
        loop {
            let mut tx = self.store.begin().await?;
            let items = store::stream_after(&mut tx, cursor, 1000).await?;
            tx.commit().await?;
            if let Some(found) = items
                .iter()
                .find(|i| i.message_type == "CC037C" && i.xml.contains(&marker))
            {
                return Ok(Ok(Some(found.xml.clone())));
            }
            cursor = items.last().map_or(cursor, |i| i.cursor);
            match tokio::time::timeout_at(deadline, head.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Ok(Ok(None)),
            }
        }
    }
}
