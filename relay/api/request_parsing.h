#pragma once
// Validation of API input: JSON bodies, subscription fields, query parameters. Every function
// returns a clear invalid_json / invalid_field error and never a partially applied value.

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "relay/core/result.h"
#include "relay/http/http_server.h"
#include "relay/model/subscription.h"
#include "storage/mutations.h"

namespace relay {

// The body as a JSON object (415 for a non-JSON Content-Type, 400 for bad JSON or a non-object;
// a NUL byte, where nlohmann would stop reading, is bad JSON like any other trailing byte).
Result<nlohmann::json> parse_json_object(const HttpRequest& request);

// An event from a parsed JSON tree; `idempotency_key` is the header, if any. The payload is
// nlohmann's dump (keys sorted, numbers rewritten): the reference the scanning parsers below
// are tested against, not how relay ingests.
Result<mutations::NewEvent> parse_new_event(const nlohmann::json& body, std::string_view idempotency_key);

// The body of POST /v1/events, with the same rules and errors as parse_json_object followed by
// parse_new_event, but without building a JSON tree: the text is validated, the payload is kept
// as compacted text (the bytes as published, whitespace between tokens removed: keys keep their
// order, numbers and escapes stay as written), and only `type` and `id` are decoded. This is the
// ingest hot path.
Result<mutations::NewEvent> parse_event_body(const HttpRequest& request, std::string_view idempotency_key);

// The body of POST /v1/events/batch, `{"events": [...]}`, read in one pass like
// parse_event_body: each event's payload is kept as compacted text, so that the batch stores
// the same bytes as POST /v1/events. The whole body answers one error (invalid JSON, no
// "events" array of 1 to 1000 elements, another member); otherwise each element gets its
// event or its own invalid_field error, in order.
Result<std::vector<Result<mutations::NewEvent>>> parse_event_batch_body(const HttpRequest& request);

// Applies the fields present in `body` to `sub` (all of them on create, some on PATCH).
// On error `sub` is unchanged.
Status apply_subscription_fields(const nlohmann::json& body, Subscription& sub, bool creating);

// Query string parameters, percent-decoded. Error for a malformed query.
Result<std::map<std::string, std::string>> parse_query(std::string_view target);

}  // namespace relay
