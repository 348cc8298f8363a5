#include "relay/cluster/cluster_keys.h"

#include <charconv>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "relay/core/time.h"

namespace relay::cluster {

namespace {

constexpr std::size_t kNumberDigits = 10;  // every uint32

using nlohmann::json;

// The JSON object in `value`, or a discarded value when it is not one.
json parse_object(std::string_view value) {
  json parsed = json::parse(value, nullptr, /*allow_exceptions=*/false);
  return parsed.is_object() ? parsed : json(json::value_t::discarded);
}

std::optional<std::uint32_t> number_member(const json& object) {
  const auto it = object.find("number");
  if (it == object.end() || !it->is_number_unsigned()) return std::nullopt;
  const auto n = it->get<std::uint64_t>();
  if (n == 0 || n > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
  return static_cast<std::uint32_t>(n);
}

std::optional<std::string> name_member(const json& object) {
  const auto it = object.find("name");
  if (it == object.end() || !it->is_string() || !is_valid_shard_name(it->get_ref<const std::string&>())) {
    return std::nullopt;
  }
  return it->get<std::string>();
}

}  // namespace

bool is_valid_shard_name(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (const char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

ClusterKeys::ClusterKeys(std::string prefix) : prefix_(std::move(prefix)) {
  if (prefix_.empty() || prefix_.back() != '/') prefix_.push_back('/');
}

std::string ClusterKeys::shard_name(std::string_view name) const { return shard_names().append(name); }

std::string ClusterKeys::shard_number(std::uint32_t number) const {
  char digits[kNumberDigits + 1];
  std::snprintf(digits, sizeof digits, "%010u", static_cast<unsigned>(number));
  return shard_numbers().append(digits, kNumberDigits);
}

std::string ClusterKeys::live_shard(std::string_view name) const { return live_shards().append(name); }

std::string ClusterKeys::subscription(std::string_view id) const { return subscriptions().append(id); }

std::optional<std::string_view> ClusterKeys::suffix(std::string_view key, std::string_view prefix) {
  if (key.size() <= prefix.size() || key.substr(0, prefix.size()) != prefix) return std::nullopt;
  return key.substr(prefix.size());
}

std::optional<std::uint32_t> ClusterKeys::parse_number(std::string_view suffix) {
  if (suffix.size() != kNumberDigits) return std::nullopt;
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(suffix.data(), suffix.data() + suffix.size(), n);
  if (ec != std::errc() || end != suffix.data() + suffix.size()) return std::nullopt;
  if (n == 0 || n > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
  return static_cast<std::uint32_t>(n);
}

std::string encode_name_value(std::uint32_t number) { return json{{"number", number}}.dump(); }

std::optional<std::uint32_t> decode_name_value(std::string_view value) {
  const json object = parse_object(value);
  if (object.is_discarded()) return std::nullopt;
  return number_member(object);
}

std::string encode_number_value(std::string_view name) { return json{{"name", name}}.dump(); }

std::optional<std::string> decode_number_value(std::string_view value) {
  const json object = parse_object(value);
  if (object.is_discarded()) return std::nullopt;
  return name_member(object);
}

std::string encode_live_value(const LiveShard& shard) {
  return json{{"name", shard.name},
              {"number", shard.number},
              {"advertise", shard.advertise},
              {"started_at", format_time(shard.started_at)}}
      .dump();
}

std::optional<LiveShard> decode_live_value(std::string_view value) {
  const json object = parse_object(value);
  if (object.is_discarded()) return std::nullopt;
  auto name = name_member(object);
  const auto number = number_member(object);
  const auto advertise = object.find("advertise");
  const auto started_at = object.find("started_at");
  if (!name || !number || advertise == object.end() || !advertise->is_string() || started_at == object.end() ||
      !started_at->is_string()) {
    return std::nullopt;
  }
  const auto started = parse_time(started_at->get_ref<const std::string&>());
  if (!started) return std::nullopt;
  return LiveShard{std::move(*name), *number, advertise->get<std::string>(), *started};
}

}  // namespace relay::cluster
