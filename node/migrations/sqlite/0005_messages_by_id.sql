-- The messages by message identification: a hub NACK names the message it refuses (a
-- forwarded CC034C) by its identification in `correlationIdentifier`.
CREATE INDEX node_messages_message_id ON node_messages (message_id);
