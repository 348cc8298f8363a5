#pragma once
// RelayApp: builds relayd from its parts (storage, pipeline, registry, scheduler, egress, API,
// metrics), runs the event loop on the calling thread, and shuts down in order on SIGTERM or
// SIGINT: ingress answers 503 (new connections are still accepted), attempts drain within
// --shutdown-grace, commit, close the database.

#include "relay/config/config.h"

namespace relay {

// Runs until a termination signal; returns the process exit code. Throws ConfigError for
// configuration that is only found bad at startup (e.g. an unusable --allow-cidr), and
// std::runtime_error when the data directory cannot be opened or the port bound.
int run_relay(const Config& config);

}  // namespace relay
