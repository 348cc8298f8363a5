#include "relay/model/delivery.h"

namespace relay {

const char* delivery_state_name(DeliveryState state) {
  switch (state) {
    case DeliveryState::pending: return "pending";
    case DeliveryState::in_flight: return "in_flight";
    case DeliveryState::succeeded: return "succeeded";
    case DeliveryState::dead: return "dead";
    case DeliveryState::superseded: return "superseded";
  }
  return "pending";
}

std::optional<DeliveryState> parse_delivery_state(std::string_view name) {
  for (DeliveryState s : {DeliveryState::pending, DeliveryState::in_flight, DeliveryState::succeeded,
                          DeliveryState::dead, DeliveryState::superseded}) {
    if (name == delivery_state_name(s)) return s;
  }
  return std::nullopt;
}

const char* attempt_outcome_name(AttemptOutcome outcome) {
  switch (outcome) {
    case AttemptOutcome::success: return "success";
    case AttemptOutcome::http_4xx: return "http_4xx";
    case AttemptOutcome::http_5xx: return "http_5xx";
    case AttemptOutcome::timeout: return "timeout";
    case AttemptOutcome::connect_error: return "connect_error";
    case AttemptOutcome::dns_error: return "dns_error";
    case AttemptOutcome::tls_error: return "tls_error";
    case AttemptOutcome::blocked_destination: return "blocked_destination";
    case AttemptOutcome::other: return "other";
  }
  return "other";
}

}  // namespace relay
