#pragma once
// Events as clients publish them: the body of POST /v1/events and of POST /v1/events/batch, and
// an event object of a parsed JSON tree. Errors as in relay/api/request_parsing.h.

#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "relay/core/result.h"
#include "relay/http/http_server.h"
#include "storage/mutations.h"

namespace relay {

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
// event or its own invalid_field error, in order. With `texts`, it also gets each element as
// written in the body (views into it), in the same order: cluster mode forwards them.
Result<std::vector<Result<mutations::NewEvent>>> parse_event_batch_body(const HttpRequest& request,
                                                                         std::vector<std::string_view>* texts = nullptr);

}  // namespace relay
