#pragma once
// What the egress tests share: options that let attempts reach loopback subscribers, a JSON
// POST, and a way to drive an io_context until something happened.

#include <boost/asio/io_context.hpp>
#include <functional>
#include <string>

#include "relay/delivery/egress_client.h"

namespace relay::test {

// Default egress options plus 127.0.0.0/8, where the TestSubscribers listen.
EgressOptions loopback_allowed();

// A POST of `body` as application/json with a 30 s timeout.
EgressRequest json_post(std::string url, std::string body = "{}");

// Runs `io` one handler at a time until `done()` holds; fails the test after 60 s, a safety
// net against a hang that nothing waits for.
void run_until(boost::asio::io_context& io, const std::function<bool()>& done);

}  // namespace relay::test
