# Sourced by start-node.sh and stop-node.sh: the environment that makes the
# installed RabbitMQ scripts run a separate node out of "$STATE".
export HOME="$STATE"                       # the Erlang cookie of this node lives here
export RABBITMQ_NODENAME="$NODE_NAME"
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT="$AMQPS_PORT"    # unused (no plain listener), kept off the system node's port
export RABBITMQ_DIST_PORT="$DIST_PORT"
export RABBITMQ_CONF_ENV_FILE="$STATE/rabbitmq-env.conf"
export RABBITMQ_CONFIG_FILE="$STATE/rabbitmq.conf"
export RABBITMQ_ADVANCED_CONFIG_FILE="$STATE/advanced.config"
export RABBITMQ_ENABLED_PLUGINS_FILE="$STATE/enabled_plugins"
export RABBITMQ_MNESIA_BASE="$STATE/mnesia"
export RABBITMQ_LOG_BASE="$STATE/log"
export RABBITMQ_PID_FILE="$STATE/$NODE_NAME.pid"
export RABBITMQ_LOGS="$STATE/log/$NODE_NAME.log"
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
