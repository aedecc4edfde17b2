-- What each node should hold for a movement: the pure life cycle folded over the messages the
-- hub forwarded to that node (JSON of message_catalog::lifecycle::Movement) and its digest.
CREATE TABLE hub_node_movements (
    mrn       TEXT    NOT NULL,
    country   TEXT    NOT NULL,
    movement  TEXT    NOT NULL,
    digest    TEXT    NOT NULL,
    applied   INTEGER NOT NULL,
    PRIMARY KEY (mrn, country)
);
