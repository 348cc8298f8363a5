#include "relay/core/result.h"

namespace relay {

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
    case Errc::internal: return "internal";
  }
  return "internal";
}

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
    case Errc::internal: return 500;
  }
  return 500;
}

}  // namespace relay
