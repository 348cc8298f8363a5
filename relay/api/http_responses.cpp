#include "relay/api/http_responses.h"

namespace relay {

namespace http = boost::beast::http;

namespace {

// The snake_case name used in the error JSON, e.g. "invalid_field".
const char* errc_name(Errc code) {
  switch (code) {
    case Errc::invalid_json: return "invalid_json";
    case Errc::invalid_field: return "invalid_field";
    case Errc::unauthorized: return "unauthorized";
    case Errc::forbidden: return "forbidden";
    case Errc::not_found: return "not_found";
    case Errc::method_not_allowed: return "method_not_allowed";
    case Errc::conflict: return "conflict";
    case Errc::payload_too_large: return "payload_too_large";
    case Errc::unsupported_media_type: return "unsupported_media_type";
    case Errc::too_many_requests: return "too_many_requests";
    case Errc::unavailable: return "unavailable";
    case Errc::shard_unavailable: return "shard_unavailable";
    case Errc::internal: return "internal";
  }
  return "internal";
}

}  // namespace

int errc_http_status(Errc code) {
  switch (code) {
    case Errc::invalid_json: return 400;
    case Errc::invalid_field: return 400;
    case Errc::unauthorized: return 401;
    case Errc::forbidden: return 403;
    case Errc::not_found: return 404;
    case Errc::method_not_allowed: return 405;
    case Errc::conflict: return 409;
    case Errc::payload_too_large: return 413;
    case Errc::unsupported_media_type: return 415;
    case Errc::too_many_requests: return 429;
    case Errc::unavailable: return 503;
    case Errc::shard_unavailable: return 503;
    case Errc::internal: return 500;
  }
  return 500;
}

HttpResponse json_response(int status, const nlohmann::json& body) {
  // Response excerpts from subscribers may hold invalid UTF-8: replace rather
  // than fail.
  return json_text_response(status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

HttpResponse json_text_response(int status, std::string body) {
  HttpResponse response{static_cast<http::status>(status), 11};
  response.set(http::field::content_type, "application/json");
  response.set(http::field::server, "relay/" RELAY_VERSION);
  response.body() = std::move(body);
  return response;
}

std::string error_json(const Error& error) {
  const nlohmann::json body = {{"error", {{"code", errc_name(error.code)}, {"message", error.message}}}};
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

HttpResponse error_response(const Error& error) {
  return json_text_response(errc_http_status(error.code), error_json(error));
}

HttpResponse error_response(Errc code, std::string message) { return error_response(Error{code, std::move(message)}); }

HttpResponse empty_response(int status) {
  HttpResponse response{static_cast<http::status>(status), 11};
  response.set(http::field::server, "relay/" RELAY_VERSION);
  return response;
}

}  // namespace relay
