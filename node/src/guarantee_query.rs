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
//! **A refused query.** The hub refuses a CC034C it cannot answer (an unknown GRN, a requester
//! the contract does not cover) with a CD917C whose `correlationIdentifier` is the forwarded
//! message's identification (the query has no MRN, so the refusal is a CD917C, not a CD906C).
//! The node finds the CC034C it forwarded ([`store::sent_to_hub`]) and puts a CC917C on the
//! national stream, the way the node's own refusals of national messages read: addressed to
//! the requester, `correlationIdentifier` the national system's message identification, and
//! the hub's errors (pointer, code, text with the stable label such as
//! `guarantee.unknown-grn`). [`Engine::balance_of`] watches for that CC917C as well as for the
//! CC037C, so the node API answers a refused query at once (400, the CC917C) rather than
//! waiting out its time limit.
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

    /// The hub's CD917C, when it refuses a CC034C this node forwarded: a CC917C onto the
    /// national stream (see the module documentation). `false`: the CD917C refuses something
    /// else, and is recorded as any other.
    pub(super) async fn deliver_balance_refusal(
        &self,
        tx: &mut Tx<'static>,
        nack: &message_catalog::generated::cats::CD917CType,
    ) -> Result<bool, EngineError> {
        let Some(forwarded_id) = nack.correlation_identifier.as_deref() else {
            return Ok(false);
        };
        let Some(body) = store::sent_to_hub(tx, "CC034C", forwarded_id).await? else {
            return Ok(false);
        };
        let Ok(Message::CC034C(query)) = codec::decode(&body, &self.limits) else {
            tracing::warn!(forwarded_id, "the forwarded CC034C no longer decodes");
            return Ok(false);
        };
        let now = whole_seconds(Utc::now());
        let national = ncts::CC917CType {
            phase_id: Some(ncts::phaseIDtype::NCTS5_1),
            message_sender: format!("NTA.{}", self.country),
            message_recipient: query.requester.identification_number.clone(),
            preparation_date_and_time: now.naive_utc(),
            message_identification: self.new_message_id(),
            message_type: ncts::MessageTypes::CC917C,
            correlation_identifier: query.correlation_identifier.clone(),
            header: None,
            xml_error: nack
                .xml_error
                .iter()
                .map(|e| ncts::XMLErrorType {
                    error_line_number: e.error_line_number,
                    error_column_number: e.error_column_number,
                    error_pointer: e.error_pointer.clone(),
                    error_code: ncts::XmlErrorCodes::from_lexical(e.error_code.as_str())
                        .unwrap_or(ncts::XmlErrorCodes::V18),
                    error_text: e.error_text.clone(),
                    original_attribute_value: e.original_attribute_value.clone(),
                })
                .collect(),
        };
        let xml =
            String::from_utf8_lossy(&codec::encode(&Message::CC917C(Box::new(national.clone()))))
                .into_owned();
        store::insert_message(
            tx,
            &MessageRow {
                movement_id: None,
                direction: "out",
                message_type: "CC917C",
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
            "CC917C",
            None,
            None,
            &national.message_identification,
            "",
            now.timestamp_millis(),
            &xml,
        )
        .await?;
        tracing::info!(
            forwarded_id,
            request = ?query.correlation_identifier,
            code = nack.xml_error.first().map(|e| refusal_label(&e.error_text)),
            "guarantee query refused by the hub"
        );
        Ok(true)
    }

    /// Asks the hub for the balance of `grn` for `requester` (a CC034C built here, checked and
    /// forwarded as one from the national system) and waits up to `wait` for the CC037C.
    /// `Err(answer)`: the CC034C was refused, by this node (its NACK) or by the hub (the CC917C
    /// of [`Engine::deliver_balance_refusal`], as [`Answer::Invalid`] with the label of its first
    /// error, e.g. `guarantee.unknown-grn`); `Ok(None)`: no answer in time.
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
            if let Some(refused) = items
                .iter()
                .find(|i| i.message_type == "CC917C" && i.xml.contains(&marker))
            {
                let code = match codec::decode(refused.xml.as_bytes(), &self.limits) {
                    Ok(Message::CC917C(m)) => m
                        .xml_error
                        .first()
                        .map(|e| refusal_label(&e.error_text).to_owned()),
                    _ => None,
                };
                return Ok(Err(Answer::Invalid {
                    xml: refused.xml.clone(),
                    code: code.unwrap_or_else(|| "guarantee.refused".to_owned()),
                }));
            }
            cursor = items.last().map_or(cursor, |i| i.cursor);
            match tokio::time::timeout_at(deadline, head.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Ok(Ok(None)),
            }
        }
    }
}

/// The stable label an error text starts with (`guarantee.unknown-grn: no insurance contract
/// has GRN …` → `guarantee.unknown-grn`).
fn refusal_label(text: &str) -> &str {
    text.split_once(':').map_or(text, |(label, _)| label.trim())
}
