-- Resume by sequence (issue 7). Every hub delivery the inbox accepted that the hub has not yet
-- confirmed, written in the transaction that applies it. On every (re)connection the node
-- sends the fingerprints of these rows with its resume point; the hub re-delivers the entries
-- after the resume point that are not among them. `request_id` is the resume or reconciliation
-- request that last named the row; the hub's answer to that request removes it.
CREATE TABLE node_resume_pending (
    sender     TEXT NOT NULL,
    message_id TEXT NOT NULL,
    request_id TEXT,
    PRIMARY KEY (sender, message_id)
);
CREATE INDEX node_resume_pending_request ON node_resume_pending (request_id);
