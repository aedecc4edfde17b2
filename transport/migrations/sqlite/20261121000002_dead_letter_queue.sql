-- The queue a dead letter was refused from. NULL: the hub's inbound queue (the receiver's own
-- queue, as every row before this migration). A node's refusal of a hub delivery on the direct
-- link is recorded at the hub with the node's queue (`cats.node.KZ`), so that it can be
-- replayed to that node.
ALTER TABLE transport_dead_letters ADD COLUMN queue TEXT;
