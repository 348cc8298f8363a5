#include "tests/support/egress_fixtures.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <utility>

namespace relay::test {

EgressOptions loopback_allowed() {
  EgressOptions options;
  options.destinations.allow_cidrs.push_back(parse_cidr("127.0.0.0/8").value());
  return options;
}

EgressRequest json_post(std::string url, std::string body) {
  EgressRequest request;
  request.url = std::move(url);
  request.headers = {{"Content-Type", "application/json"}};
  request.body = std::make_shared<const std::string>(std::move(body));
  request.timeout_ms = 30000;
  return request;
}

void run_until(boost::asio::io_context& io, const std::function<bool()>& done) {
  using namespace std::chrono_literals;
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (!done()) {
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "event never happened";
    io.run_one_for(100ms);
  }
}

}  // namespace relay::test
