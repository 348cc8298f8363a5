#pragma once
// A POST /v1/events request as relayd's HTTP server hands it to the parsers, for unit tests of
// request parsing that need no server.

#include <string>
#include <utility>

#include "relay/http/http_server.h"

namespace relay::test {

inline HttpRequest json_post_request(std::string body, std::string content_type = "application/json") {
  HttpRequest req{boost::beast::http::verb::post, "/v1/events", 11};
  if (!content_type.empty()) req.set(boost::beast::http::field::content_type, content_type);
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

}  // namespace relay::test
