#pragma once
// POST /v1/events/batch in cluster mode: a batch whose events belong to several shards (by
// their ordering keys or client ids) is split into one sub-batch per owner, each forwarded
// whole, and the sub-batches' answers are put back in the order of the request. Pure functions
// over the batch's wire form; which shard owns which event is the caller's decision.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace relay::cluster {

// {"events":[...]}: the elements `elements` (indices into `texts`, the request's events as
// written) in that order.
std::string sub_batch_body(const std::vector<std::string_view>& texts, const std::vector<std::size_t>& elements);

// The per-event results, as compact JSON texts, of a sub-batch's answer: 200 {"results": [...]}
// with exactly `count` objects; nullopt for any other answer.
std::optional<std::vector<std::string>> sub_batch_results(int status, std::string_view body, std::size_t count);

// The error object {"error": {...}} of an error answer, as compact JSON text; nullopt when the
// body is not one. A sub-batch refused whole (503, 429) answers this for each of its events.
std::optional<std::string> error_object(std::string_view body);

// {"results":[...]} of per-event result texts.
std::string batch_answer(const std::vector<std::string>& results);

}  // namespace relay::cluster
