#include "relay/api/http_responses.h"

namespace relay {

namespace http = boost::beast::http;

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
