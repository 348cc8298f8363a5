#include "storage/job_records.h"

#include <nlohmann/json.hpp>

namespace relay::records {

using nlohmann::json;

namespace {

json params_record(const Job& job) {
  if (job.kind == JobKind::replay) {
    const ReplayParams& p = job.replay;
    return {{"subscription_id", p.subscription_id},
            {"since", p.since},
            {"until", p.until},
            {"event_types", p.event_types},
            {"only_failed", p.only_failed}};
  }
  const DlqRetryParams& p = job.dlq;
  return {{"subscription_id", p.subscription_id},
          {"event_type", p.event_type},
          {"since", p.since},
          {"until", p.until},
          {"limit", p.limit},
          {"tenant", p.tenant}};
}

void read_params(const json& j, Job& job) {
  if (job.kind == JobKind::replay) {
    ReplayParams& p = job.replay;
    p.subscription_id = j.at("subscription_id").get<std::string>();
    p.since = j.at("since").get<UnixMillis>();
    p.until = j.at("until").get<UnixMillis>();
    p.event_types = j.at("event_types").get<std::vector<std::string>>();
    p.only_failed = j.at("only_failed").get<bool>();
    return;
  }
  DlqRetryParams& p = job.dlq;
  p.subscription_id = j.at("subscription_id").get<std::string>();
  p.event_type = j.at("event_type").get<std::string>();
  p.since = j.at("since").get<UnixMillis>();
  p.until = j.at("until").get<UnixMillis>();
  p.limit = j.at("limit").get<std::uint64_t>();
  p.tenant = j.value("tenant", std::string());  // absent in jobs stored before tenants
}

}  // namespace

std::string encode_record(const Job& job) {
  const json record = {{"id", job.id},
                       {"kind", job_kind_name(job.kind)},
                       {"state", job_state_name(job.state)},
                       {"params", params_record(job)},
                       {"matched", job.matched},
                       {"created", job.created},
                       {"created_at", job.created_at},
                       {"finished_at", job.finished_at},
                       {"error", job.error},
                       {"cursor", job.cursor}};
  std::string out;
  json::to_msgpack(record, out);
  return out;
}

std::optional<Job> decode_job(std::string_view bytes) {
  const auto record = json::from_msgpack(bytes.begin(), bytes.end(), /*strict=*/true, /*allow_exceptions=*/false);
  if (record.is_discarded() || !record.is_object()) return std::nullopt;
  try {
    Job job;
    job.id = record.at("id").get<std::string>();
    const auto kind = parse_job_kind(record.at("kind").get<std::string>());
    const auto state = parse_job_state(record.at("state").get<std::string>());
    if (!kind || !state) return std::nullopt;
    job.kind = *kind;
    job.state = *state;
    read_params(record.at("params"), job);
    job.matched = record.at("matched").get<std::uint64_t>();
    job.created = record.at("created").get<std::uint64_t>();
    job.created_at = record.at("created_at").get<UnixMillis>();
    job.finished_at = record.at("finished_at").get<UnixMillis>();
    job.error = record.at("error").get<std::string>();
    job.cursor = record.at("cursor").get<std::string>();
    return job;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

}  // namespace relay::records
