#include "tests/support/egress_fixtures.h"


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

}  // namespace relay::test
