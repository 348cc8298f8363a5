#pragma once
// What the egress tests share: options that let attempts reach loopback subscribers and a JSON
// POST. They drive their io_context with run_until from io_loop.h.

#include <string>

#include "relay/delivery/egress_client.h"
#include "tests/support/io_loop.h"

namespace relay::test {

// Default egress options plus 127.0.0.0/8, where the TestSubscribers listen.
EgressOptions loopback_allowed();

// A POST of `body` as application/json with a 30 s timeout.
EgressRequest json_post(std::string url, std::string body = "{}");

}  // namespace relay::test
