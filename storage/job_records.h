#pragma once
// The stored form of a job (family `jobs`): like a subscription, a JSON record encoded as
// MessagePack. A job is written once per chunk, far from the hot path, and its params differ by
// kind, so a self-describing record is worth its bytes. What is not one whole, valid job record
// decodes to nothing.

#include <optional>
#include <string>
#include <string_view>

#include "relay/model/job.h"

namespace relay::records {

std::string encode_record(const Job& job);
std::optional<Job> decode_job(std::string_view bytes);

}  // namespace relay::records
